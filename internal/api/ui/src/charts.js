// The live charts: one sample a second from GET /api/v1/dashboard; rates
// come from the difference between successive samples.

import uPlot from 'uplot';
import { call } from './api.js';
import { ClusterPanel } from './cluster.js';

const families = ['read', 'write', 'scan', 'txn'];
const familyColors = { read: '#1f6fd1', write: '#d1451f', scan: '#138a6e', txn: '#7d3cb5' };
const keepSeconds = 300;
const pollMillis = 1000;

const num = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });

function bytesLabel(v) {
  if (v === null || v === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return num.format(v) + ' ' + units[i];
}

function countLabel(v) {
  if (v === null || v === undefined) return '–';
  if (Math.abs(v) >= 1e6) return num.format(v / 1e6) + 'M';
  if (Math.abs(v) >= 1e4) return num.format(v / 1e3) + 'k';
  return num.format(v);
}

// latencyLabel writes a latency given in milliseconds in the unit that
// reads best: 40 µs, 2.5 ms, 1.2 s.
function latencyLabel(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1) return num.format(ms * 1000) + ' µs';
  if (ms < 1000) return num.format(ms) + ' ms';
  return num.format(ms / 1000) + ' s';
}
const pctLabel = (v) => (v === null || v === undefined ? '–' : num.format(v) + ' %');

// A chart spec names its series and how to read each from a sample pair.
function protocolOpsSpec(proto) {
  return {
    id: `ops-${proto}`,
    title: `${proto.toUpperCase()} operations/s`,
    help: 'Operations finished per second, by command family.',
    format: countLabel,
    series: families.map((f) => ({
      label: f,
      stroke: familyColors[f],
      value: (cur, prev, dt) => rate(famOf(cur, proto, f)?.ops, famOf(prev, proto, f)?.ops, dt),
    })),
  };
}

function protocolLatencySpec(proto) {
  const series = [];
  for (const f of families) {
    for (const q of ['p50', 'p99']) {
      series.push({
        label: `${f} ${q}`,
        stroke: familyColors[f],
        dash: q === 'p99' ? [6, 4] : undefined,
        value: (cur) => {
          const fam = famOf(cur, proto, f);
          return fam && fam.window_ops > 0 ? fam[`${q}_us`] / 1000 : null;
        },
      });
    }
  }
  return {
    id: `latency-${proto}`,
    title: `${proto.toUpperCase()} latency p50 / p99`,
    help: 'Of the operations that finished in the last whole second; p99 dashed; log scale.',
    format: latencyLabel,
    log: true,
    series,
  };
}

const engineSpecs = [
  {
    id: 'cache',
    title: 'Cache hit rate',
    help: 'Hits over lookups of the value cache in each second.',
    format: pctLabel,
    range: [0, 100],
    series: [{
      label: 'hit rate',
      stroke: '#138a6e',
      value: (cur, prev) => {
        if (!cur.stats || !prev?.stats) return null;
        const hits = cur.stats.hits - prev.stats.hits;
        const lookups = hits + cur.stats.misses - prev.stats.misses;
        return lookups > 0 && hits >= 0 ? (100 * hits) / lookups : null;
      },
    }],
  },
  {
    id: 'keys',
    title: 'Keys',
    help: 'Live keys in the engine.',
    format: countLabel,
    series: [{ label: 'keys', stroke: '#1f6fd1', value: (cur) => cur.stats?.keys ?? null }],
  },
  {
    id: 'bytes',
    title: 'Live / dead bytes',
    help: 'Bytes of live records on disk, and of dead ones compaction can reclaim.',
    format: bytesLabel,
    incrs: binaryIncrements(),
    series: [
      { label: 'live', stroke: '#138a6e', value: (cur) => cur.stats?.live_bytes ?? null },
      { label: 'dead', stroke: '#d1451f', value: (cur) => cur.stats?.dead_bytes ?? null },
    ],
  },
  {
    id: 'syncs',
    title: 'Syncs/s and group commit',
    help: 'fdatasync calls per second on the log; average commits per sync (right axis).',
    format: countLabel,
    secondAxis: 'commits/sync',
    series: [
      { label: 'syncs/s', stroke: '#1f6fd1', value: (cur, prev, dt) => rate(cur.stats?.syncs, prev?.stats?.syncs, dt) },
      { label: 'avg group commit', stroke: '#7d3cb5', scale: 'y2', value: (cur) => cur.stats?.avg_group_commit ?? null },
    ],
  },
  {
    id: 'compactions',
    title: 'Compactions',
    help: 'Segment compactions run since the server started.',
    format: countLabel,
    series: [{ label: 'compactions', stroke: '#b5651d', value: (cur) => cur.stats?.compactions ?? null }],
  },
];

function connectionsSpec(protos) {
  const palette = ['#1f6fd1', '#d1451f', '#138a6e', '#7d3cb5'];
  return {
    id: 'connections',
    title: 'Open connections',
    help: 'Client connections open now, by protocol.',
    format: countLabel,
    series: protos.map((p, i) => ({
      label: p,
      stroke: palette[i % palette.length],
      value: (cur) => cur.protocols.find((x) => x.name === p)?.connections ?? null,
    })),
  };
}

// binaryIncrements are tick steps for byte axes: powers of two, so ticks
// land on 256 KiB, 1 MiB, 1.5 MiB rather than 76.6 KiB.
function binaryIncrements() {
  const out = [];
  for (let e = 0; e <= 50; e++) out.push(2 ** e);
  return out;
}

const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
const timeLabel = (t) => (t === null || t === undefined ? '–' : clock.format(new Date(t * 1000)));

function powersOfTen(min, max) {
  const out = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    const v = 10 ** e;
    if (v >= min && v <= max) out.push(v);
  }
  return out.length > 0 ? out : [min, max];
}

function famOf(sample, proto, family) {
  return sample?.protocols.find((p) => p.name === proto)?.families[family];
}

function rate(cur, prev, dt) {
  if (cur === undefined || prev === undefined || dt <= 0) return null;
  const d = cur - prev;
  return d >= 0 ? d / dt : null; // a restart resets counters: no rate then
}

// Chart is one uPlot chart with its rolling data.
class Chart {
  constructor(spec, grid) {
    this.spec = spec;
    this.data = [[], ...spec.series.map(() => [])];
    this.box = document.createElement('section');
    this.box.className = 'chart';
    this.box.dataset.chart = spec.id;
    this.box.dataset.points = '0';
    const h = document.createElement('h3');
    h.textContent = spec.title;
    const p = document.createElement('p');
    p.className = 'help';
    p.textContent = spec.help;
    this.plotBox = document.createElement('div');
    this.box.append(h, p, this.plotBox);
    grid.append(this.box);
    const yAxis = { stroke: '#555', grid: { stroke: '#eee' }, ticks: { stroke: '#ddd' }, size: 64, values: (u, vals) => vals.map((v) => (v === null ? '' : spec.format(v))) };
    // A log axis gets a line per power of ten only; uPlot's default adds
    // the steps between, a grey band at this height.
    if (spec.log) yAxis.splits = (u, i, min, max) => powersOfTen(min, max);
    if (spec.incrs) yAxis.incrs = spec.incrs;
    // Wall-clock seconds only: the date would crowd a phone's axis.
    const xAxis = { stroke: '#555', grid: { stroke: '#eee' }, ticks: { stroke: '#ddd' }, space: 70, values: (u, vals) => vals.map(timeLabel) };
    const axes = [xAxis, yAxis];
    const scales = { x: { time: true } };
    if (spec.range) scales.y = { range: spec.range };
    // Latencies span decades (a cached read and a synced write): a log
    // scale keeps both readable. Values are never 0 (at least 1 µs).
    if (spec.log) scales.y = { distr: 3, log: 10 };
    if (spec.secondAxis) {
      axes.push({ scale: 'y2', side: 1, stroke: '#7d3cb5', grid: { show: false }, size: 50, values: (u, vals) => vals.map((v) => num.format(v)) });
      scales.y2 = {};
    }
    this.plot = new uPlot({
      width: this.width(),
      height: 170,
      scales,
      axes,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      series: [
        { value: (u, v) => timeLabel(v) },
        ...spec.series.map((s) => ({
          label: s.label,
          stroke: s.stroke,
          width: 1.5,
          dash: s.dash,
          scale: s.scale ?? 'y',
          spanGaps: false,
          value: (u, v) => (s.scale === 'y2' ? (v === null ? '–' : num.format(v)) : spec.format(v)),
        })),
      ],
      hooks: { draw: [() => this.markDrawn()] },
    }, this.data, this.plotBox);
    new ResizeObserver(() => this.plot.setSize({ width: this.width(), height: 170 })).observe(this.box);
  }

  width() {
    return Math.max(240, this.box.clientWidth - 24);
  }

  push(cur, prev, dt) {
    this.data[0].push(cur.time_ms / 1000);
    this.spec.series.forEach((s, i) => this.data[i + 1].push(s.value(cur, prev, dt)));
    const cut = this.data[0].findIndex((t) => t >= cur.time_ms / 1000 - keepSeconds);
    if (cut > 0) this.data.forEach((col) => col.splice(0, cut));
    this.plot.setData(this.data);
    // Show the newest values in the legend unless the cursor is reading
    // an older sample.
    if (this.plot.cursor.left === undefined || this.plot.cursor.left < 0) {
      this.plot.setLegend({ idx: this.data[0].length - 1 });
    }
  }

  // markDrawn records on the chart's element what the last draw showed,
  // so a test (or a curious operator) can tell a drawn chart from an
  // empty one without reading pixels.
  markDrawn() {
    let max = null;
    for (const col of this.data.slice(1)) {
      for (const v of col) if (v !== null && (max === null || v > max)) max = v;
    }
    this.box.dataset.points = String(this.data[0].length);
    this.box.dataset.max = max === null ? '' : String(max);
  }
}

// Dashboard polls the server and feeds the tiles and charts.
export class Dashboard {
  constructor(root) {
    this.grid = root.querySelector('#charts');
    this.tiles = root.querySelector('#tiles');
    this.status = root.querySelector('#status');
    this.cluster = new ClusterPanel(root);
    this.charts = new Map();
    this.prev = null;
  }

  start() {
    const tick = async () => {
      const started = Date.now();
      try {
        this.update(await call('GET', '/api/v1/dashboard'));
        this.status.textContent = '';
        this.status.className = 'status';
      } catch (err) {
        this.status.textContent = `No figures from the server: ${err.message}. Retrying every second.`;
        this.status.className = 'status error';
      }
      setTimeout(tick, Math.max(0, pollMillis - (Date.now() - started)));
    };
    tick();
  }

  chart(spec) {
    let c = this.charts.get(spec.id);
    if (!c) {
      c = new Chart(spec, this.grid);
      this.charts.set(spec.id, c);
    }
    return c;
  }

  update(cur) {
    const prev = this.prev;
    const dt = prev ? (cur.time_ms - prev.time_ms) / 1000 : 0;
    const protos = cur.protocols.map((p) => p.name);
    const specs = [];
    for (const p of protos) specs.push(protocolOpsSpec(p), protocolLatencySpec(p));
    specs.push(...engineSpecs, connectionsSpec(protos));
    // A protocol that appears later (a listener enabled) gets its charts
    // then; a connections chart whose protocols changed is rebuilt.
    const conn = this.charts.get('connections');
    if (conn && conn.spec.series.length !== protos.length) {
      conn.box.remove();
      this.charts.delete('connections');
    }
    for (const spec of specs) this.chart(spec).push(cur, prev, dt);
    this.renderTiles(cur, prev, dt);
    this.cluster.render(cur);
    this.prev = cur;
  }

  renderTiles(cur, prev, dt) {
    let ops = null;
    let p99 = null;
    for (const p of cur.protocols) {
      for (const f of families) {
        const r = rate(p.families[f].ops, famOf(prev, p.name, f)?.ops, dt);
        if (r !== null) ops = (ops ?? 0) + r;
        if (p.families[f].window_ops > 0) p99 = Math.max(p99 ?? 0, p.families[f].p99_us / 1000);
      }
    }
    const st = cur.stats;
    const tiles = [
      ['Engine', cur.engine],
      ['Version', cur.version],
      ['Uptime', duration(cur.uptime_seconds)],
      ['Operations/s', countLabel(ops)],
      ['Worst p99', latencyLabel(p99)],
      ['Keys', countLabel(st?.keys)],
      ['Cache hit rate', st ? pctLabel(100 * st.hit_rate) : '–'],
      ['Live bytes', bytesLabel(st?.live_bytes)],
      ['Connections', countLabel(cur.protocols.reduce((n, p) => n + p.connections, 0))],
    ];
    if (cur.stats_error) tiles.push(['Engine error', cur.stats_error]);
    this.tiles.replaceChildren(...tiles.map(([k, v]) => {
      const d = document.createElement('div');
      d.className = 'tile';
      const label = document.createElement('span');
      label.textContent = k;
      const value = document.createElement('strong');
      value.textContent = v;
      d.append(label, value);
      return d;
    }));
  }
}

function duration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m ${s % 60}s`;
}
