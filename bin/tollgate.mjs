#!/usr/bin/env node
// The `tollgate` command. From the repository it runs the TypeScript sources through tsx;
// from a build it runs the compiled JavaScript next to it (dist/src/cli/tollgate.js).
import { existsSync } from 'node:fs';
import process from 'node:process';
import { URL, fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const built = `${root}dist/src/cli/tollgate.js`;
const source = `${root}src/cli/tollgate.ts`;
let entry;
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  entry = source;
} else {
  entry = built;
}
let cli;
try {
  cli = await import(pathToFileURL(entry).href);
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  // a build without dist/ (run `npm run build` in a clone)
  process.stderr.write(`tollgate: this installation is not built (${error.message}); run \`npm run build\` first\n`);
  process.exit(1);
}
await cli.main();
