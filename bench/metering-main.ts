/**
 * The metering benchmark alone: `npx tsx bench/metering-main.ts`.
 * BENCH_DURATION_MS (per phase, default 5000), BENCH_METERING_LOAD (events/s, default 1500).
 * Prints the figures and the Markdown section; writes nothing.
 */
import { benchMetering } from './metering.js';

const durationMs = Number(process.env['BENCH_DURATION_MS'] ?? 5_000);
const loadPerSecond = Number(process.env['BENCH_METERING_LOAD'] ?? 1_500);

benchMetering({ durationMs, loadPerSecond }).then(
  ({ figures, lines }) => {
    for (const figure of figures) console.log(`${figure.name.padEnd(36)} ${figure.value.toFixed(3)} ${figure.unit}  (${figure.note})`);
    console.log(`\n${lines.join('\n')}`);
    process.exit(0);
  },
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
