/**
 * The install scripts stop with a message naming the missing tool and the fix
 * when a prerequisite is absent, instead of failing obscurely or hanging.
 * Runs them with a PATH that holds only basic shell tools and an empty cache.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../../infra/services.js';

const BASIC_TOOLS = ['bash', 'dirname', 'mkdir', 'flock', 'id', 'cat', 'printf', 'rm', 'ls', 'head', 'mv', 'touch', 'cut'];
const root = mkdtempSync(join(tmpdir(), 'tollgate-install-'));
const bin = join(root, 'bin');
const cache = join(root, 'cache');

function setUpBin(): void {
  if (existsSync(bin)) return;
  mkdirSync(bin, { recursive: true });
  for (const tool of BASIC_TOOLS) {
    for (const dir of ['/usr/bin', '/bin']) {
      if (existsSync(join(dir, tool))) {
        symlinkSync(join(dir, tool), join(bin, tool));
        break;
      }
    }
  }
}

async function runScript(script: string): Promise<{ code: number; stderr: string }> {
  setUpBin();
  return new Promise((resolveRun) => {
    execFile(
      join(bin, 'bash'),
      [join(REPO_ROOT, 'infra', script)],
      { env: { PATH: bin, HOME: root, TOLLGATE_CACHE_DIR: cache }, timeout: 20_000 },
      (error, _stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolveRun({ code, stderr });
      },
    );
  });
}

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('install scripts without their prerequisites', () => {
  it('install-temporal.sh names Go and the alternative when go is missing', async () => {
    const { code, stderr } = await runScript('install-temporal.sh');
    expect(code).toBe(1);
    expect(stderr).toContain("[infra] ERROR: 'go' is missing. Install Go >= 1.25");
    expect(stderr).toContain('or set TEMPORAL_ADDRESS');
  });

  it('install-dynamodb.sh names Java when java is missing', async () => {
    const { code, stderr } = await runScript('install-dynamodb.sh');
    expect(code).toBe(1);
    expect(stderr).toContain("[infra] ERROR: 'java' is missing.");
    expect(stderr).toContain('or set DYNAMODB_ENDPOINT');
  });

  it('install-redis.sh names apt-get and REDIS_URL when neither redis-server nor apt-get exists', async () => {
    const { code, stderr } = await runScript('install-redis.sh');
    expect(code).toBe(1);
    expect(stderr).toContain("[infra] ERROR: 'apt-get' is missing.");
    expect(stderr).toContain('or set REDIS_URL');
  });
});
