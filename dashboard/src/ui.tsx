/** Shared pieces: a section with its loading, error and empty states, and number/time formats. Every value is rendered as text. */
import type { ComponentChildren } from 'preact';
import type { Polled } from './poll.js';

export const fmtUnits = (units: number | null | undefined): string =>
  units === null || units === undefined ? '—' : Math.round(units).toLocaleString('en-US');

export const fmtMoney = (micros: number, currency: string): string => `${(micros / 1_000_000).toFixed(2)} ${currency}`;

/** A unit price: as many decimals as it has (micros), at least two. */
export const fmtUnitPrice = (micros: number, currency: string): string =>
  `${(micros / 1_000_000).toFixed(6).replace(/0{1,4}$/, '')} ${currency}`;

export function fmtDuration(ms: number): string {
  if (ms <= 0) return 'now';
  const s = Math.ceil(ms / 1_000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export const fmtTime = (iso: string): string => iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');

export function Section(props: {
  title: string;
  id: string;
  polled?: Pick<Polled<unknown>, 'error' | 'isLoading' | 'at'>;
  children: ComponentChildren;
  actions?: ComponentChildren;
}) {
  const { polled } = props;
  return (
    <section class="panel" aria-labelledby={`${props.id}-title`} data-testid={props.id}>
      <header class="panel-head">
        <h2 id={`${props.id}-title`}>{props.title}</h2>
        {props.actions}
        {polled?.at === undefined ? null : <span class="muted small">updated {polled.at.toLocaleTimeString('en-GB')}</span>}
      </header>
      {polled?.error === undefined ? null : (
        <p class="error" role="alert" data-state="error">
          {polled.error}
        </p>
      )}
      {polled?.isLoading === true ? (
        <p class="muted" data-state="loading">
          Loading…
        </p>
      ) : (
        props.children
      )}
    </section>
  );
}

export function Empty(props: { children: ComponentChildren }) {
  return (
    <p class="empty muted" data-state="empty">
      {props.children}
    </p>
  );
}
