#!/usr/bin/env node
// The `tollgate` command. From the repository it runs the TypeScript sources through tsx;
// from a build it runs the compiled JavaScript next to it (dist/src/cli/tollgate.js).
import { existsSync } from 'node:fs';
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
const { main } = await import(pathToFileURL(entry).href);
await main();
