/** A plan file (JSON, or YAML for `.yaml`/`.yml`) as the JSON text the admin API takes. */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { CliError } from './admin-client.js';

export /** The plan file as JSON text. @throws CliError (exit 2) */
function planText(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`${file}: ${error instanceof Error ? error.message : String(error)}`, 2);
  }
  try {
    return JSON.stringify(/\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text));
  } catch (error) {
    throw new CliError(
      `${file}: not ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${error instanceof Error ? error.message : String(error)}`,
      2,
    );
  }
}
