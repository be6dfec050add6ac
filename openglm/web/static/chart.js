// A bar chart drawn as inline SVG: one bar per row, labelled axes, a title and description for screen readers.

import { svg } from './dom.js';

export function barChart(rows, { title, valueOf, labelOf, format = String }) {
  const width = 640;
  const height = 220;
  const pad = { top: 16, right: 8, bottom: 36, left: 56 };
  const values = rows.map(valueOf);
  const max = Math.max(1, ...values);
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const step = plotW / Math.max(rows.length, 1);
  const barW = Math.max(2, Math.min(48, step * 0.7));
  const every = Math.ceil(rows.length / 10);
  const id = `chart-${Math.random().toString(36).slice(2, 8)}`;
  const bars = rows.map((row, i) => {
    const value = values[i];
    const barH = (value / max) * plotH;
    const x = pad.left + i * step + (step - barW) / 2;
    return [
      svg('rect', { class: 'bar', x: x.toFixed(1), y: (pad.top + plotH - barH).toFixed(1), width: barW.toFixed(1), height: barH.toFixed(1) },
        svg('title', {}, `${labelOf(row)}: ${format(value)}`)),
      i % every === 0 ? svg('text', { x: (x + barW / 2).toFixed(1), y: height - pad.bottom + 16, 'text-anchor': 'middle' }, labelOf(row)) : null,
    ];
  });
  const ticks = [0, 0.5, 1].map((f) => {
    const y = pad.top + plotH - f * plotH;
    return [svg('line', { class: 'axis', x1: pad.left, x2: width - pad.right, y1: y, y2: y }),
      svg('text', { x: pad.left - 6, y: y + 4, 'text-anchor': 'end' }, format(max * f))];
  });
  return svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': `${id}-t ${id}-d` },
    svg('title', { id: `${id}-t` }, title),
    svg('desc', { id: `${id}-d` }, rows.map((row, i) => `${labelOf(row)}: ${format(values[i])}`).join('; ') || 'No data'),
    ticks, bars);
}
