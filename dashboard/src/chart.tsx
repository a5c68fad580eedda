/** A uPlot chart of series points ({start, key, units}): one line per key, hover values in the legend. */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Point {
  start: string;
  key: string;
  units: number;
}

const COLORS = ['#2563eb', '#d97706', '#059669', '#dc2626', '#7c3aed', '#0891b2', '#db2777', '#65a30d'];

/** A chart's time axis: every bucket of [fromMs, toMs) of `stepMs`. */
export interface Axis {
  fromMs: number;
  toMs: number;
  stepMs: number;
}

/** Points as uPlot's columns: x in seconds for every bucket of the axis, one column per key (0 where a key has no point). */
export function pivot(points: Point[], axis: Axis): { keys: string[]; data: uPlot.AlignedData } {
  const buckets: number[] = [];
  for (let at = axis.fromMs; at < axis.toMs && buckets.length < 10_000; at += axis.stepMs) buckets.push(at / 1_000);
  const xs = [...new Set([...buckets, ...points.map((point) => Date.parse(point.start) / 1_000)])].sort((a, b) => a - b);
  const keys = [...new Set(points.map((point) => point.key))].sort();
  const index = new Map(xs.map((x, i) => [x, i]));
  const columns = keys.map(() => xs.map(() => 0));
  for (const point of points) {
    const row = columns[keys.indexOf(point.key)];
    const at = index.get(Date.parse(point.start) / 1_000);
    if (row !== undefined && at !== undefined) row[at] = (row[at] ?? 0) + point.units;
  }
  return { keys, data: [xs, ...columns] };
}

export function SeriesChart(props: { points: Point[]; axis: Axis; label: string; yLabel?: string; minSpanS?: number }) {
  const minSpanS = props.minSpanS ?? 0;
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = host.current;
    if (element === null) return undefined;
    const { keys, data } = pivot(props.points, props.axis);
    const width = Math.max(280, Math.min(element.clientWidth || 600, 1100));
    const plot = new uPlot(
      {
        width,
        height: 240,
        series: [
          { label: 'time' },
          ...keys.map((key, i) => ({
            label: key,
            stroke: COLORS[i % COLORS.length] ?? '#2563eb',
            width: 2,
            points: { show: true, size: 4 },
          })),
        ],
        axes: [{ stroke: 'currentColor' }, { stroke: 'currentColor', label: props.yLabel ?? 'units' }],
        scales: {
          x: { time: true, range: (_plot, min, max): uPlot.Range.MinMax => (max - min < minSpanS ? [max - minSpanS, max] : [min, max]) },
        },
        legend: { live: true },
      },
      data,
      element,
    );
    const onResize = (): void => plot.setSize({ width: Math.max(280, Math.min(element.clientWidth || 600, 1100)), height: 240 });
    window.addEventListener('resize', onResize);
    return () => {
      window.removeEventListener('resize', onResize);
      plot.destroy();
    };
  }, [props.points, minSpanS]);
  return <div class="chart" ref={host} role="img" aria-label={props.label} data-testid="chart" />;
}
