/**
 * Sums a `.cpuprofile` (from `node --cpu-prof`, e.g. of `profile-client.ts`): `npx tsx bench/decider/summarize-profile.ts <file> [top]
 * [lastSeconds]` (only the samples of the profile's last seconds: the measured loop without start-up and warm-up) prints the busy time (every sample but `(idle)`) by area (GC, ioredis, Node internals, tollgate's decider, the
 * bench, the rest), the functions with the most self time, and the inclusive time of a few entry points (ioredis'
 * command path, the decider's stages), each as a share of the busy time.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  endTime: number;
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const file = process.argv[2];
if (file === undefined) throw new Error('usage: summarize-profile.ts <file.cpuprofile> [top]');
const top = Number(process.argv[3] ?? 25);
const lastUs = Number(process.argv[4] ?? Number.POSITIVE_INFINITY) * 1e6;
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parentOf = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);

const selfUs = new Map<number, number>();
let at = profile.startTime;
profile.samples.forEach((id, index) => {
  const delta = profile.timeDeltas[index] ?? 0;
  at += delta;
  if (profile.endTime - at <= lastUs) selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
});

const short = (url: string): string => url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\/.*?\/(src|bench)\//, '$1/');
const area = (node: ProfileNode): string => {
  const { functionName, url } = node.callFrame;
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(program)') return '(program)';
  if (url.includes('node_modules/ioredis') || url.includes('node_modules/@ioredis')) return 'ioredis';
  if (url.includes('/src/decider/')) return 'decider';
  if (url.includes('/bench/')) return 'bench';
  if (url.startsWith('node:') || url === '') return 'node/native';
  return 'other';
};

const byArea = new Map<string, number>();
const byFunction = new Map<string, number>();
let busy = 0;
for (const [id, us] of selfUs) {
  const node = byId.get(id) as ProfileNode;
  const name = area(node);
  byArea.set(name, (byArea.get(name) ?? 0) + us);
  if (name === 'idle') continue;
  busy += us;
  const key = `${node.callFrame.functionName || '(anonymous)'} ${short(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + us);
}

/** Inclusive time of every function whose name matches: a sample counts once however deep the recursion. */
const inclusive = (match: (node: ProfileNode) => boolean): number => {
  let total = 0;
  for (const [id, us] of selfUs) {
    for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
      if (match(byId.get(at) as ProfileNode)) {
        total += us;
        break;
      }
    }
  }
  return total;
};

const pct = (us: number): string => `${((100 * us) / busy).toFixed(1)} %`;
console.log(`busy ${(busy / 1e3).toFixed(0)} ms of ${((busy + (byArea.get('idle') ?? 0)) / 1e3).toFixed(0)} ms sampled`);
for (const [name, us] of [...byArea].sort((a, b) => b[1] - a[1])) if (name !== 'idle') console.log(`  ${name.padEnd(12)} ${pct(us)}`);
console.log('self time:');
for (const [name, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(us).padStart(7)}  ${name}`);
const entries: [string, (node: ProfileNode) => boolean][] = [
  ['ioredis sendCommand (incl. toWritable, socket write)', (n) => n.callFrame.functionName === 'sendCommand' && area(n) === 'ioredis'],
  ['Command.toWritable', (n) => n.callFrame.functionName === 'toWritable'],
  ['ioredis reply decoding (Decoder.write)', (n) => n.callFrame.url.includes('resp/decoder')],
  ['compileRequest', (n) => n.callFrame.functionName === 'compileRequest'],
  ['compileBatch', (n) => n.callFrame.functionName === 'compileBatch'],
  ['decodeDecideBatch', (n) => n.callFrame.functionName === 'decodeDecideBatch'],
  ['toDecision', (n) => n.callFrame.functionName === 'toDecision'],
  ['processTicksAndRejections (microtasks)', (n) => n.callFrame.functionName === 'processTicksAndRejections'],
];
console.log('inclusive:');
for (const [name, match] of entries) console.log(`  ${pct(inclusive(match)).padStart(7)}  ${name}`);
