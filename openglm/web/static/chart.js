// Charts drawn as inline SVG (bars; lines), with a title and description for screen readers.

import { svg } from './dom.js';

// A bar chart: one bar per row, labelled axes.
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

// Bars in groups: one group per label, one bar per series in each (classes series-0, series-1, …), a legend, values
// from 0 to `max`; a series without a value in a group has no bar there. For scores of models side by side.
export function groupedBarChart(labels, series, { title, valueOf, max = 1, format = String }) {
  const width = 640;
  const height = 240;
  const pad = { top: 28, right: 8, bottom: 36, left: 56 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const step = plotW / Math.max(labels.length, 1);
  const barW = Math.max(2, Math.min(40, (step * 0.8) / Math.max(series.length, 1)));
  const every = Math.ceil(labels.length / 10);
  const id = `chart-${Math.random().toString(36).slice(2, 8)}`;
  const y = (v) => pad.top + plotH - (Math.min(Math.max(v, 0), max) / max) * plotH;
  const groups = labels.map((label, i) => {
    const left = pad.left + i * step + (step - barW * series.length) / 2;
    const bars = series.map((name, j) => {
      const value = valueOf(label, name);
      if (value == null) return null;
      return svg('rect', { class: ['bar', `series-${j}`], x: (left + j * barW).toFixed(1), y: y(value).toFixed(1),
        width: barW.toFixed(1), height: (pad.top + plotH - y(value)).toFixed(1) }, svg('title', {}, `${name}, ${label}: ${format(value)}`));
    });
    const text = i % every === 0
      ? svg('text', { x: (pad.left + i * step + step / 2).toFixed(1), y: height - pad.bottom + 16, 'text-anchor': 'middle' }, label) : null;
    return svg('g', { class: 'group' }, bars, text);
  });
  const ticks = [0, 0.5, 1].map((f) => {
    const at = pad.top + plotH - f * plotH;
    return [svg('line', { class: 'axis', x1: pad.left, x2: width - pad.right, y1: at, y2: at }),
      svg('text', { x: pad.left - 6, y: at + 4, 'text-anchor': 'end' }, format(max * f))];
  });
  const legend = series.map((name, j) => svg('g', { class: 'legend' },
    svg('rect', { class: ['bar', `series-${j}`], x: pad.left + j * 150, y: 4, width: 12, height: 12 }),
    svg('text', { x: pad.left + j * 150 + 18, y: 15 }, name)));
  const described = labels.map((label) => `${label}: ${series.map((name) => {
    const value = valueOf(label, name);
    return `${name} ${value == null ? 'none' : format(value)}`;
  }).join(', ')}`);
  return svg('svg', { class: 'chart grouped-chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': `${id}-t ${id}-d` },
    svg('title', { id: `${id}-t` }, title),
    svg('desc', { id: `${id}-d` }, described.join('; ') || 'No data'),
    ticks, legend, groups);
}

// A line chart as inline SVG: one polyline per series ({name, className, points: [{x, y}]}) over a shared x axis,
// a legend, and a title and description for screen readers (each series' last point).
export function lineChart(series, { title, xLabel = 'step', format = (v) => v.toFixed(3) }) {
  const width = 640;
  const height = 240;
  const pad = { top: 28, right: 12, bottom: 36, left: 56 };
  const points = series.flatMap((s) => s.points);
  const maxX = Math.max(1, ...points.map((p) => p.x));
  const minX = Math.min(maxX, ...points.map((p) => p.x));
  const maxY = Math.max(1e-9, ...points.map((p) => p.y));
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const x = (v) => pad.left + (maxX === minX ? plotW / 2 : ((v - minX) / (maxX - minX)) * plotW);
  const y = (v) => pad.top + plotH - (Math.max(0, v) / maxY) * plotH;
  const id = `chart-${Math.random().toString(36).slice(2, 8)}`;
  const ticks = [0, 0.5, 1].map((f) => {
    const at = pad.top + plotH - f * plotH;
    return [svg('line', { class: 'axis', x1: pad.left, x2: width - pad.right, y1: at, y2: at }),
      svg('text', { x: pad.left - 6, y: at + 4, 'text-anchor': 'end' }, format(maxY * f))];
  });
  const xTicks = [minX, maxX].filter((v, i, all) => all.indexOf(v) === i).map((v) =>
    svg('text', { x: x(v).toFixed(1), y: height - pad.bottom + 16, 'text-anchor': 'middle' }, String(v)));
  const lines = series.filter((s) => s.points.length).map((s) => svg('g', { class: ['series', s.className] },
    svg('polyline', { points: s.points.map((p) => `${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join(' ') }),
    s.points.map((p) => svg('circle', { cx: x(p.x).toFixed(1), cy: y(p.y).toFixed(1), r: 2.5 },
      svg('title', {}, `${s.name}, ${xLabel} ${p.x}: ${format(p.y)}`)))));
  const legend = series.map((s, i) => svg('g', { class: ['series', s.className] },
    svg('line', { x1: pad.left + i * 150, x2: pad.left + i * 150 + 18, y1: 12, y2: 12 }),
    svg('text', { x: pad.left + i * 150 + 24, y: 16 }, s.name)));
  const described = series.filter((s) => s.points.length)
    .map((s) => { const last = s.points[s.points.length - 1]; return `${s.name} at ${xLabel} ${last.x}: ${format(last.y)}`; });
  return svg('svg', { class: 'chart line-chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': `${id}-t ${id}-d` },
    svg('title', { id: `${id}-t` }, title),
    svg('desc', { id: `${id}-d` }, described.join('; ') || 'No data'),
    ticks, xTicks,
    svg('text', { x: width - pad.right, y: height - 4, 'text-anchor': 'end' }, xLabel),
    legend, lines);
}
