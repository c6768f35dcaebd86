// The step viewer: every step of a pass is drawn here, in the browser, from one payload (bptt/stepview.py).
// A step click never goes to the server: the address bar follows at once (history.replaceState) and Python hears
// the step when the user settles, pauses or play ends (setStateValue "step"). Above the payload budget the server
// sends a chunk of steps at a time. The viewer keeps the chunks it has (up to KEEP_BYTES), asks for the next chunk in
// the direction of travel well before it needs it, and shows "loading" only when a step it has to draw is not there.

const SETTLE_MS = 600;            // report the step to Python this long after the last move (a run costs the page)
const SPEEDS = [["1 s / step", 1000], ["½ s / step", 500], ["¼ s / step", 250], ["0.1 s / step", 100]];
const STALL_MS = 15000;           // a chunk that has not come after this long says so (and may be asked for again)
const KEEP_BYTES = 96 * 2 ** 20;  // the chunks kept in the browser (the farthest from the step drawn go first)
const LOG_MAX = 400;              // entries of the viewer's event log (view.log: requests, arrivals; for benchmarks)

// ---------------------------------------------------------------------------------------------------------------------
// payload

function decode(data) {
  // b"BPTT" | uint32 n | n bytes of JSON | float32 values (see stepview.py); viewed in place when the floats are
  // aligned, else copied once
  let bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.byteOffset % 4) bytes = bytes.slice();
  const magic = String.fromCharCode(bytes[0], bytes[1], bytes[2], bytes[3]);
  if (magic !== "BPTT") throw new Error("bptt stepper: the data is not a step-viewer payload");
  const n = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const values = new Float32Array(bytes.buffer, bytes.byteOffset + 8 + n, (bytes.byteLength - 8 - n) / 4);
  return { header, values };
}

function lut(flat) {
  // 256 RGB entries -> Uint32 RGBA (little-endian ABGR) for ImageData
  const out = new Uint32Array(256);
  for (let i = 0; i < 256; i++) out[i] = (255 << 24) | (flat[3 * i + 2] << 16) | (flat[3 * i + 1] << 8) | flat[3 * i];
  return out;
}

const NONFINITE = (255 << 24) | (40 << 16) | (40 << 8) | 40;   // inf / nan cells: near black

function fmt(v) {
  if (Number.isNaN(v)) return "nan";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "−inf";
  if (v === 0) return "0";
  const a = Math.abs(v);
  return (a >= 1e-3 && a < 1e6 ? v.toPrecision(7) : v.toExponential(6)).replace("-", "−");
}

function short(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  return (a >= 1e-2 && a < 1e4 ? String(Number(v.toPrecision(3))) : v.toExponential(1)).replace("-", "−");
}

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "html") e.innerHTML = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids) if (kid) e.append(kid);
  return e;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

// ---------------------------------------------------------------------------------------------------------------------
// the view (one per mounted component; it lives on parentElement, so a re-call with new data reuses it)

class View {
  constructor(parent) {
    this.parent = parent;
    this.h = null;             // header of the payload last received (the config's groups, strip, start, ...)
    this.chunks = [];          // the chunks of steps held: {lo, hi, steps, values, bytes}, any order
    this.cur = null;           // the chunk of the step drawn
    this.values = null;        // its Float32Array
    this.k = 0;                // the step drawn (1..T)
    this.pending = null;       // a step asked for, waiting for its chunk
    this.span = 1;             // the most steps one chunk has held
    this.perStep = 1;          // the most bytes one step of a chunk has taken
    this.log = [];             // [ms, event, detail]: chunk requests and arrivals (read by benchmarks/bench_app.py)
    this.playing = false;
    this.timer = null;
    this.settle = null;
    this.seq = 0;
    this.reported = null;      // the step Python knows
    this.inflight = 0;         // time a chunk was asked for (0: none)
    this.want = null;          // the 0-based t whose chunk was asked for
    this.dir = 0;              // the direction of the last move in t (+1 right, −1 left)
    this.weight = null;        // the weight-gradient tab
    this.local = false;        // colour range of this step only (weight gradients)
    this.speed = 1000;
    this.root = null;
    this._onResize = () => this.layout();
    window.addEventListener("resize", this._onResize);
    // the keys work from page load wherever focus is (the body too, e.g. after a button was disabled under it),
    // except in a text field or another control that uses them itself
    this._onKey = (e) => this.key(e);
    document.addEventListener("keydown", this._onKey);
  }

  destroy() {
    this.stop(false);
    clearTimeout(this.settle);
    window.removeEventListener("resize", this._onResize);
    document.removeEventListener("keydown", this._onKey);
    if (this.resizer) this.resizer.disconnect();
  }

  // -- steps and time ------------------------------------------------------------------------------------------------
  get T() { return this.h.T; }
  get backward() { return this.h.page === "backward"; }
  tOf(k) { return this.backward ? this.T - k : k - 1; }         // 0-based t of page step k
  kOf(t) { return this.backward ? this.T - t : t + 1; }         // page step of 0-based t
  chunkOf(t) { return this.chunks.find((c) => t >= c.lo && t < c.hi) || null; }
  loaded(k) { return !!this.chunkOf(this.tOf(k)); }

  note(event, detail) {
    this.log.push([Math.round(performance.now()), event, detail]);
    if (this.log.length > LOG_MAX) this.log.splice(0, this.log.length - LOG_MAX);
  }

  load(data, setState, setTrigger) {
    this.setState = setState;
    this.setTrigger = setTrigger;
    if (data === null || data === undefined) return;
    const t0 = performance.now();
    const { header, values } = decode(data);
    const fresh = !this.h || this.h.id !== header.id;
    const restart = fresh || this.h.start !== header.start;    // Python moved the step itself (or a new config)
    this.h = header;
    if (fresh) {
      this.chunks = [];
      this.span = 1;
      this.perStep = 1;
      this.lut = { signed: lut(header.colours.signed), diff: lut(header.colours.diff),
                   gate: lut(header.colours.gate || header.colours.signed) };
      this.build();
    }
    if (!this.chunks.some((c) => c.lo === header.lo && c.hi === header.hi)) {
      this.chunks.push({ lo: header.lo, hi: header.hi, steps: header.steps, values, bytes: values.byteLength });
    }
    this.span = Math.max(this.span, header.hi - header.lo);
    this.perStep = Math.max(this.perStep, values.byteLength / (header.hi - header.lo));
    if (this.want === null || (this.want >= header.lo && this.want < header.hi)) { this.inflight = 0; this.want = null; }
    this.note("arrive", { lo: header.lo, hi: header.hi, bytes: data.byteLength, decode_ms: +(performance.now() - t0).toFixed(1) });
    let target = null;
    if (restart) { target = header.start; this.pending = null; this.reported = header.start; }
    else if (this.pending !== null && this.loaded(this.pending)) target = this.pending;
    else if (!this.loaded(this.k)) target = this.kOf(Math.min(Math.max(this.tOf(this.k), header.lo), header.hi - 1));
    this.evict(target === null ? this.k : target);
    if (this.pending === null || target !== null) this.loadingBox(false);
    if (target !== null) {                                       // a step to draw now; otherwise keep what is drawn
      this.pending = null;
      this.playWait = false;
      this.go(target, { report: !restart });
      if (this.playing) this.schedule();
    } else {
      this.prefetch();
    }
  }

  evict(k) {
    // keep at most KEEP_BYTES of chunks: drop the farthest from step k, never the one holding it
    const t = this.tOf(k);
    const dist = (c) => (t < c.lo ? c.lo - t : t >= c.hi ? t - c.hi + 1 : 0);
    this.chunks.sort((a, b) => dist(a) - dist(b));
    let total = 0;
    this.chunks = this.chunks.filter((c, i) => (total += c.bytes) <= KEEP_BYTES || i === 0);
  }

  go(k, { report = true } = {}) {
    k = Math.min(Math.max(k, 1), this.T);
    if (this.k && k !== this.k) this.dir = Math.sign(this.tOf(k) - this.tOf(this.k));
    if (!this.loaded(k)) { this.pending = k; this.ask(this.tOf(k), true); return; }
    this.k = k;
    this.draw();
    this.root.dataset.step = String(k);                          // only after step k has been drawn
    this.url(k);
    if (report && !this.playing) this.later();
    this.prefetch();
  }

  url(k) {
    try {
      const u = new URL(window.location.href);
      if (u.searchParams.get("step") !== String(k)) {
        u.searchParams.set("step", String(k));
        window.history.replaceState(window.history.state, "", u.toString());
      }
    } catch (e) { /* a sandboxed page without history: nothing to follow */ }
  }

  later() {
    clearTimeout(this.settle);
    this.settle = setTimeout(() => this.report(), SETTLE_MS);
  }

  report(extra = null) {
    // tell Python the step; every report carries the chunk still wanted, so a newer report never drops a request
    clearTimeout(this.settle);
    const k = this.k;
    if (!extra && k === this.reported && this.want === null) return;
    this.seq += 1;
    this.reported = k;
    const rep = { k, seq: this.seq };
    if (this.want !== null) rep.want = this.want;
    this.setState("step", rep);
  }

  loadingBox(show, t = 0) {
    const box = this.root.querySelector(".bptt-loading");
    clearTimeout(this.stall);
    box.hidden = !show;
    if (!show) return;
    box.textContent = `Loading the steps around t = ${t} …`;
    this.stall = setTimeout(() => {
      if (box.hidden) return;
      box.textContent = `Still loading the steps around t = ${t}: the server is busy. ` +
        "They will appear here as soon as they arrive.";
      if (this.pending !== null) { this.inflight = 0; this.ask(this.tOf(this.pending), true); }   // a lost run?
    }, STALL_MS);
  }

  ask(t, needed) {
    // ask Python for the chunk holding 0-based t (needed: a step to draw waits for it, so say "loading")
    if (needed) this.loadingBox(true, t + 1);
    const busy = this.inflight && performance.now() - this.inflight < STALL_MS;
    if (busy && (this.want === t || !needed)) return;            // one request at a time, unless a step waits
    this.inflight = performance.now();
    this.want = t;
    this.note("ask", { t, needed });
    this.report({ want: t });
  }

  prefetch() {
    // keep the next steps in the direction of travel (as many as the payload budget holds, at least two chunks) and
    // the one behind; ask for the nearest gap
    const T = this.T;
    if (this.chunks.some((c) => c.lo === 0 && c.hi === T)) return;
    if (this.inflight && performance.now() - this.inflight < STALL_MS) return;
    const t = this.tOf(this.k);
    const dir = this.playing || !this.dir ? (this.backward ? -1 : 1) : this.dir;   // unmoved: the pass's direction
    const ahead = Math.max(2 * this.span, Math.floor(this.h.budget / this.perStep));
    for (const d of [...Array(ahead).keys()].map((i) => dir * (i + 1)).concat([-dir])) {
      const u = t + d;
      if (u >= 0 && u < T && !this.chunkOf(u)) { this.ask(u, false); return; }
    }
  }

  // -- play ----------------------------------------------------------------------------------------------------------
  play() {
    if (this.k >= this.T) this.go(1, { report: false });
    this.playing = true;
    this.controls();
    this.schedule();
  }

  stop(report = true) {
    this.playing = false;
    this.playNote(false);
    if (this.playWait) { this.pending = null; this.playWait = false; }   // paused while play waited: stay here
    clearTimeout(this.timer);
    if (this.root) this.controls();
    if (report && this.h) this.report();
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), this.speed);
  }

  tick() {
    if (!this.playing) return;
    if (this.k >= this.T) { this.stop(); return; }
    const next = this.k + 1;
    if (!this.loaded(next)) {
      // play outran the data (large configs at a fast speed): wait for the chunk on the current step, say that play
      // goes as fast as the steps arrive, and go on when it comes (load() resumes play); no "loading" alarm
      this.playNote(true);
      this.pending = next;
      this.playWait = true;
      this.ask(this.tOf(next), false);
      this.timer = setTimeout(() => {                            // a lost run? ask again
        if (this.playing && this.pending === next) { this.inflight = 0; this.ask(this.tOf(next), false); }
      }, STALL_MS);
      return;
    }
    this.go(next, { report: false });
    if (this.k >= this.T) this.stop(); else this.schedule();
  }

  playNote(show) {
    const note = this.root && this.root.querySelector(".bptt-playnote");
    if (!note) return;
    note.hidden = !show;
    if (show) note.textContent = "Playing as fast as the steps arrive from the server: at this size that is slower " +
      "than the chosen speed.";
  }

  // -- DOM -----------------------------------------------------------------------------------------------------------
  build() {
    const h = this.h;
    if (this.root) this.root.remove();                          // keep the <style> Streamlit put beside it
    const root = el("div", { class: "bptt-stepper", "data-testid": "bptt-stepper", "data-steps": h.T,
                             "data-page": h.page, tabindex: 0 });
    this.root = root;
    const head = el("div", { class: "bptt-head" }, el("div", { class: "bptt-title" }),
                    el("div", { class: "bptt-verdict" }));
    // controls: position means time, so on the Backward page "next" points left
    const b = (id, text, title) => el("button", { type: "button", "data-testid": `bptt-step-${id}`, title, text });
    const first = b("first", this.backward ? `t = ${h.T} »` : "« t = 1", "the first step of this pass");
    const prev = b("prev", this.backward ? "prev ▶" : "◀ prev", "the previous step (←/→ keys)");
    const next = b("next", this.backward ? "◀ next" : "next ▶", "the next step (←/→ keys)");
    const last = b("last", this.backward ? "« t = 1" : `t = ${h.T} »`, "the last step of this pass");
    const play = b("play", "▶ play", "play and pause (Space)");
    play.classList.add("bptt-play");
    const speed = el("select", { class: "bptt-speed", "aria-label": "speed", "data-testid": "bptt-step-speed" });
    for (const [label, ms] of SPEEDS) speed.append(el("option", { value: ms, text: label, selected: ms === this.speed }));
    const slider = el("input", { type: "range", min: 1, max: h.T, step: 1, value: 1, class: "bptt-slider",
                                 "data-testid": "bptt-step-slider", "aria-label": "t", disabled: h.T === 1 });
    const ordered = this.backward ? [last, next, prev, first] : [first, prev, next, last];
    const buttons = el("div", { class: "bptt-buttons" }, ...ordered, play, speed);
    const sliderBox = el("div", { class: "bptt-sliderbox" }, el("span", { text: "t = 1" }), slider,
                         el("span", { text: `t = ${h.T}` }));
    const controls = el("div", { class: "bptt-controls" }, buttons, sliderBox);
    first.onclick = () => this.go(1);
    last.onclick = () => this.go(h.T);
    prev.onclick = () => this.go(this.k - 1);
    next.onclick = () => this.go(this.k + 1);
    play.onclick = () => (this.playing ? this.stop() : this.play());
    speed.onchange = () => { this.speed = Number(speed.value); if (this.playing) this.schedule(); };
    slider.oninput = () => this.go(this.kOf(Number(slider.value) - 1));
    root.addEventListener("keyup", (e) => {                       // Space plays: it must not also click a button
      if ((e.key === " " || e.code === "Space") && e.target && e.target.tagName === "BUTTON") e.preventDefault();
    });
    this.ui = { first, prev, next, last, play, slider };

    const caption = el("div", { class: "bptt-caption" });
    const loading = el("div", { class: "bptt-loading", "data-testid": "bptt-loading", role: "status" });
    loading.hidden = true;
    const playnote = el("div", { class: "bptt-playnote", "data-testid": "bptt-playnote", role: "status" });
    playnote.hidden = true;
    this.stripBox = el("div", { class: "bptt-strip", "data-testid": "bptt-strip" });
    root.append(head, controls, caption, loading, playnote, this.stripBox, el("div", { class: "bptt-eq" }));

    // the heatmaps: a row per group, the weight gradients behind tabs
    this.groups = [];
    let tabs = null;
    for (const g of h.groups) {
      if (g.section && !(g.tab && tabs)) root.append(el("h4", { class: "bptt-section", text: g.section }));
      if (g.tab && !tabs) {
        tabs = el("div", { class: "bptt-tabs", role: "tablist" });
        for (const w of h.weights) {
          const tb = el("button", { type: "button", role: "tab", "data-weight": w, "data-testid": `bptt-weight-${w}`,
                                    text: w });
          tb.onclick = () => { this.weight = w; this.draw(); };
          tabs.append(tb);
        }
        const box = el("input", { type: "checkbox", "data-testid": "bptt-local-range" });
        box.checked = this.local;
        box.onchange = () => { this.local = box.checked; this.draw(); };
        const lab = el("label", { class: "bptt-local", title: "Off: the contribution and the sums share one range, " +
                                  "the largest value met so far in this pass, so a colour compares across them and " +
                                  "you see the sum grow. On: the range of this step only, to see its pattern." },
                       box, el("span", { text: " colour range of this step only" }));
        root.append(el("div", { class: "bptt-tabbar" }, tabs, lab));
        this.weight = this.weight && h.weights.includes(this.weight) ? this.weight : "dW_hh";
      }
      const label = el("div", { class: "bptt-label" });
      const badge = el("span", { class: "bptt-badge" });
      const row = el("div", { class: "bptt-row" });
      const box = el("div", { class: "bptt-group", "data-group": g.id }, el("div", { class: "bptt-ghead" }, label, badge),
                     row);
      if (g.panels.length >= 4) row.classList.add("n4");
      const panels = g.panels.map((p, i) => this.buildPanel(g, p, i, row));
      const lastOfTab = g.tab && !h.groups.slice(h.groups.indexOf(g) + 1).some((o) => o.tab === g.tab);
      if (lastOfTab) box.append(el("div", { class: "bptt-hint", text: "Colours: this step's contribution and the sums " +
                                        "share one range, the largest value met so far in this pass (it grows as " +
                                        "steps are added). Click a cell of the NumPy engine's running sum to check " +
                                        "it with a finite difference below." }));
      root.append(box);
      this.groups.push({ g, box, label, badge, panels });
    }
    this.tip = el("div", { class: "bptt-tip", "data-testid": "bptt-tooltip" });
    this.tip.hidden = true;
    root.append(this.tip);
    this.parent.append(root);
    this.buildStrip(this.stripBox.clientWidth || Math.max(360, ((this.parent.host || this.parent).clientWidth || 900) - 16));
    if (this.resizer) this.resizer.disconnect();
    if (window.ResizeObserver) {                                // in a frame of its own: no ResizeObserver loop
      this.resizer = new ResizeObserver(() => requestAnimationFrame(() => this.layout()));
      this.resizer.observe(this.stripBox);
    }
    this.layout();
  }

  buildPanel(g, p, i, row) {
    const canvas = el("canvas", { class: "bptt-heat", width: p.cols, height: p.rows });
    const bar = el("canvas", { class: "bptt-bar", width: 1, height: 256 });
    const lut = this.lut[p.kind] || this.lut.signed;
    const ctx = bar.getContext("2d"), img = ctx.createImageData(1, 256), u32 = new Uint32Array(img.data.buffer);
    for (let y = 0; y < 256; y++) u32[y] = lut[255 - y];
    ctx.putImageData(img, 0, 0);
    const hi = el("span"), mid = el("span"), lo = el("span");
    const barBox = el("div", { class: "bptt-barbox" }, bar, el("div", { class: "bptt-ticks" }, hi, mid, lo));
    const title = el("div", { class: "bptt-ptitle", text: p.title });
    const ylab = el("div", { class: "bptt-ylab", text: p.rows > 1 ? `${p.rowname}  0 … ${p.rows - 1}` : "" });
    const xlab = el("div", { class: "bptt-xlab", text: `${p.colname}  0 … ${p.cols - 1}` });
    const heat = el("div", { class: "bptt-heatrow" }, el("div", { class: "bptt-canvaswrap" }, canvas), barBox);
    const plot = el("div", { class: "bptt-plot" }, ylab, el("div", { class: "bptt-canvasbox" }, heat, xlab));
    const rangeText = el("div", { class: "bptt-range", "data-testid": "bptt-range" });
    const fig = el("figure", { class: `bptt-panel bptt-${p.kind}`, "data-quantity": p.quantity,
                               "data-gate": p.gate || null, "data-rows": p.rows,
                               "data-cols": p.cols, "data-kind": p.kind }, title, plot, rangeText);
    if (p.kind === "diff") barBox.append(el("div", { class: "bptt-bartitle", text: "log10 |diff|" }));
    row.append(fig);
    const ctx2 = canvas.getContext("2d");
    const image = ctx2.createImageData(p.cols, p.rows);
    const panel = { p, g, fig, canvas, ctx: ctx2, image, u32: new Uint32Array(image.data.buffer), ticks: [hi, mid, lo],
                    title, range: null, rangeText };
    canvas.addEventListener("mousemove", (e) => this.hover(panel, e));
    canvas.addEventListener("mouseleave", () => { this.tip.hidden = true; });
    if (g.tab && p.quantity === `${g.tab}_acc`) {
      canvas.classList.add("bptt-pick");
      canvas.addEventListener("click", (e) => this.pick(panel, e));
    }
    return panel;
  }

  buildStrip(width) {
    // the unrolled network in page pixels, fitted to the strip's width: nodes keep a legible size at any T (past
    // about 100 steps the strip scrolls, and keeps the current step in view: scrollStrip)
    const { T, norms, cnorms, cuts } = this.h.strip;
    const box = this.stripBox;
    box.replaceChildren();
    this.stripWidth = width;
    const avail = Math.max(240, width - 4);
    const unit = Math.min(90, Math.max(9, avail / (T + 1)));
    const r = Math.max(3, Math.min(17, unit * 0.3)), labels = unit >= 30;
    const every = labels ? 0 : [1, 2, 5, 10, 20, 50].find((n) => n * unit >= 28) || 100;   // thinned t labels
    const yx = r + 4, yh = yx + 2 * r + 24, W = (T + 1) * unit;
    const H = yh + r + (norms ? 30 : 10) + (cnorms ? 18 : 0) + (every ? 14 : 0);
    const s = svg("svg", { viewBox: `${-unit / 2} 0 ${W} ${H}`, width: W, height: H });
    s.style.fontSize = `${Math.max(9, Math.round(r * 0.75))}px`;
    const line = (x1, y1, x2, y2, cls, w) => svg("line", { x1, y1, x2, y2, class: cls, "stroke-width": w });
    const head = Math.max(3, r * 0.55);
    this.stripNodes = { h: [], x: [], g: [] };
    for (let i = 1; i <= T; i++) {
      s.append(line((i - 1) * unit + r + 1, yh, i * unit - r - head - 1, yh, "fw", 1.4));
      s.append(svg("polygon", { class: "fwhead", points: `${i * unit - r - 1},${yh} ${i * unit - r - head - 2},` +
                                `${yh - head / 1.6} ${i * unit - r - head - 2},${yh + head / 1.6}` }));
      s.append(line(i * unit, yx + r - 2, i * unit, yh - r - 2, "fw", 1));
    }
    // the gradient paths back in time, width ∝ norm: the hidden path (dh_prev) and, for the LSTM, the cell path
    // (dc_prev) drawn apart under it
    const path = (vals, y, cls, name, into) => {
      const fin = vals.filter((v) => v !== null);
      const gmax = Math.max(...fin, 0) || 1, wmax = Math.max(2, Math.min(7, unit * 0.16));
      const cut = new Set(cuts);
      if (labels) {
        const lab = svg("text", { x: -unit / 2 + 2, y: y + 4, class: `plabel ${cls}` });
        lab.textContent = name === "h" ? "∂h" : "∂c";
        s.append(lab);
      }
      for (let t = 0; t < T; t++) {                            // step t sends from node t+1 to node t (0-based t)
        if (cut.has(t)) {
          const c = svg("text", { x: t * unit + unit / 2, y: y + 5, class: "cut", "text-anchor": "middle" });
          c.textContent = "✂";
          s.append(c);
          into.push(null);
          continue;
        }
        const v = vals[t], w = 0.8 + (v === null ? wmax : (wmax * v) / gmax);
        const gpath = svg("g", { class: cls });
        const x1 = (t + 1) * unit - unit * 0.18, x2 = t * unit + unit * 0.18, hd = Math.min(8, unit * 0.2);
        gpath.append(line(x1, y, x2 + hd, y, "", w));
        gpath.append(svg("polygon", { points: `${x2},${y} ${x2 + hd},${y - 2 - w / 2} ${x2 + hd},${y + 2 + w / 2}` }));
        const tt = svg("title");
        tt.textContent = `gradient sent from ${name}_${t + 1} to ${name}_${t}` +
          (name === "c" ? " along the cell path (dc_prev = dc ⊙ f)" : "") + `: norm ${v === null ? "inf/nan" : short(v)}`;
        gpath.append(tt);
        s.append(gpath);
        into.push(gpath);
      }
    };
    if (norms) path(norms, yh + r + 12, "bw", "h", this.stripNodes.g);
    if (cnorms) path(cnorms, yh + r + 30, "bw bwc", "c", this.stripNodes.g);
    for (let i = 0; i <= T; i++) {
      const g = svg("g", { class: "node h", "data-t": i });
      g.append(svg("circle", { cx: i * unit, cy: yh, r }));
      if (labels) { const tx = svg("text", { x: i * unit, y: yh + 4, "text-anchor": "middle" }); tx.textContent = `h${i}`; g.append(tx); }
      const tt = svg("title"); tt.textContent = i ? `h_${i}: go to t = ${i}` : "h_0, the initial state"; g.append(tt);
      if (i) g.addEventListener("click", () => this.go(this.kOf(i - 1)));
      s.append(g);
      this.stripNodes.h.push(g);
      if (i) {
        const gx = svg("g", { class: "node x", "data-t": i });
        gx.append(svg("rect", { x: i * unit - r + 1, y: yx - r + 3, width: 2 * r - 2, height: 2 * r - 6, rx: 2 }));
        if (labels) { const tx = svg("text", { x: i * unit, y: yx + 4, "text-anchor": "middle" }); tx.textContent = `x${i}`; gx.append(tx); }
        const tx2 = svg("title"); tx2.textContent = `x_${i}: go to t = ${i}`; gx.append(tx2);
        gx.addEventListener("click", () => this.go(this.kOf(i - 1)));
        s.append(gx);
        this.stripNodes.x.push(gx);
      }
    }
    for (let i = every; every && i <= T; i += every) {          // the nodes are too small for "h7": t every few
      const tx = svg("text", { x: i * unit, y: H - 3, "text-anchor": "middle", class: "tick" });
      tx.textContent = `t = ${i}`.replace("t = ", i === every ? "t = " : "");
      s.append(tx);
    }
    box.append(s);
    this.stripUnit = unit;
  }

  scrollStrip() {
    // keep the current node inside the strip's visible part (centred when it has left it)
    const box = this.stripBox;
    if (!box || !this.k || box.scrollWidth <= box.clientWidth + 1) return;
    const x = (this.tOf(this.k) + 1.5) * this.stripUnit, margin = Math.min(3 * this.stripUnit, box.clientWidth / 4);
    if (x - margin < box.scrollLeft || x + margin > box.scrollLeft + box.clientWidth) {
      box.scrollLeft = Math.max(0, x - box.clientWidth / 2);
    }
  }

  layout() {
    // the strip, built for the width it has (a first layout may come before the page has its final width); heatmap
    // display sizes: cells as square as the width allows, within a sensible height
    if (!this.groups) return;
    this.root.classList.toggle("narrow", this.root.clientWidth > 0 && this.root.clientWidth < 640);   // ~800 px window
    const width = this.stripBox.clientWidth;
    if (width && Math.abs(width - (this.stripWidth || 0)) > 4) {
      this.buildStrip(width);
      if (this.k) this.markStrip(this.tOf(this.k) + 1);
    }
    this.scrollStrip();
    for (const { panels } of this.groups) {
      for (const pn of panels) {
        const w = pn.canvas.clientWidth || pn.canvas.parentElement.clientWidth || 200;
        const { rows, cols } = pn.p;
        const hgt = Math.max(rows === 1 ? 18 : 40, Math.min(420, (w * rows) / cols));
        pn.canvas.style.height = `${Math.round(hgt)}px`;
      }
    }
  }

  // -- drawing -------------------------------------------------------------------------------------------------------
  step() { return this.cur.steps[this.tOf(this.k) - this.cur.lo]; }

  draw() {
    this.cur = this.chunkOf(this.tOf(this.k));
    this.values = this.cur.values;
    const h = this.h, st = this.step(), t = st.t;
    this.root.querySelector(".bptt-title").textContent = st.title;
    const verdict = this.root.querySelector(".bptt-verdict");
    verdict.textContent = (st.ok ? "✓ " : "✗ ") + st.verdict;
    verdict.className = "bptt-verdict " + (st.ok ? "ok" : "bad");
    this.root.querySelector(".bptt-caption").textContent = st.caption;
    this.root.querySelector(".bptt-eq").innerHTML = st.eq.map((e) => `<div>${e}</div>`).join("");
    this.ui.slider.value = String(t);
    this.controls();
    this.markStrip(t);
    // the heatmaps
    const at = st.at;                                            // where each panel's values of this step start
    for (const grp of this.groups) {
      const { g, box, label, badge, panels } = grp;
      const hidden = g.tab && g.tab !== this.weight;
      box.hidden = !!hidden;
      if (hidden) continue;
      label.textContent = st.labels[g.id] || "";
      const bd = st.badges[g.id];
      badge.textContent = bd ? (bd[0] ? `✓ matches · rel err ${typeof bd[1] === "number" ? short(bd[1]) : bd[1]}`
                                      : `✗ differs · rel err ${typeof bd[1] === "number" ? short(bd[1]) : bd[1]}`) : "";
      badge.className = "bptt-badge " + (bd ? (bd[0] ? "ok" : "bad") : "");
      let local = null;
      if (g.tab && this.local) local = this.localRange(panels, at);
      for (const pn of panels) {
        const title = st.titles && st.titles[pn.p.quantity];
        if (title) pn.title.textContent = title;
        this.paint(pn, at[pn.p.index], local);
      }
    }
    if (this.root.querySelector(".bptt-tabs")) {
      for (const tb of this.root.querySelectorAll(".bptt-tabs button")) {
        tb.setAttribute("aria-selected", String(tb.dataset.weight === this.weight));
      }
    }
  }

  markStrip(t) {
    // highlight 1-based step t on the strip, and keep it in view
    if (!this.stripNodes) return;
    this.stripNodes.h.forEach((g, i) => g.classList.toggle("cur", i === t));
    this.stripNodes.x.forEach((g, i) => g.classList.toggle("cur", i + 1 === t));
    this.stripNodes.g.forEach((g, i) => g && g.classList.toggle("cur", i % this.T === t - 1));   // h (and c) path
    this.scrollStrip();
  }

  localRange(panels, at) {
    // this step's largest finite |value|: the contribution alone, the running sums (NumPy and PyTorch) together
    const out = new Map();
    let acc = 0;
    for (const pn of panels) {
      if (pn.p.kind !== "signed") continue;
      const n = pn.p.rows * pn.p.cols, v = this.values, o = at[pn.p.index];
      let m = 0;
      for (let i = 0; i < n; i++) { const a = Math.abs(v[o + i]); if (a > m && a !== Infinity) m = a; }
      if (pn.p.quantity.endsWith("_step")) out.set(pn, m || 1);
      else { acc = Math.max(acc, m); out.set(pn, "acc"); }
    }
    for (const [pn, m] of out) if (m === "acc") out.set(pn, acc || 1);
    return out;
  }

  paint(pn, o, local) {
    const { p, u32 } = pn;
    const v = this.values, n = p.rows * p.cols;
    let zmin = p.zmin, zmax = p.zmax;
    const grown = this.step().z && this.step().z[p.index];       // a range that grows with the steps taken
    if (local && local.has(pn)) { zmax = local.get(pn); zmin = -zmax; }
    else if (grown) { zmax = grown; zmin = -zmax; }
    const table = this.lut[p.kind] || this.lut.signed;
    const scale = 255 / (zmax - zmin || 1);
    for (let i = 0; i < n; i++) {
      const x = v[o + i];
      if (!Number.isFinite(x)) { u32[i] = NONFINITE; continue; }
      let c = Math.round((x - zmin) * scale);
      c = c < 0 ? 0 : c > 255 ? 255 : c;
      u32[i] = table[c];
    }
    pn.ctx.putImageData(pn.image, 0, 0);
    if (pn.range !== zmax) {
      pn.range = zmax;
      const [hi, mid, lo] = pn.ticks;
      if (p.kind === "signed") { hi.textContent = short(zmax); mid.textContent = "0"; lo.textContent = short(zmin); }
      else { hi.textContent = String(zmax); mid.textContent = String((zmax + zmin) / 2); lo.textContent = String(zmin); }
      pn.rangeText.textContent = p.kind === "diff" ? `colour range 10^${zmin} … 10^${zmax}` :
        p.kind === "gate" ? "colour range 0 (closed) … 1 (open)" : `colour range ±${short(zmax)}`;
      pn.rangeText.dataset.zmax = String(zmax);
    }
  }

  controls() {
    if (!this.ui) return;
    const { first, prev, next, last, play } = this.ui;
    first.disabled = prev.disabled = this.k <= 1;
    next.disabled = last.disabled = this.k >= this.T;
    play.disabled = this.T <= 1;
    play.textContent = this.playing ? "⏸ pause" : "▶ play";
    play.classList.toggle("on", this.playing);
  }

  cell(pn, e) {
    const r = pn.canvas.getBoundingClientRect();
    const col = Math.floor(((e.clientX - r.left) / r.width) * pn.p.cols);
    const row = Math.floor(((e.clientY - r.top) / r.height) * pn.p.rows);
    if (col < 0 || row < 0 || col >= pn.p.cols || row >= pn.p.rows) return null;
    return { row, col };
  }

  hover(pn, e) {
    const c = this.cell(pn, e);
    if (!c) { this.tip.hidden = true; return; }
    const p = pn.p, st = this.step();
    const x = this.values[st.at[p.index] + c.row * p.cols + c.col];
    const rn = (p.rowname || "").split(" ").pop(), cn = (p.colname || "").split(" ").pop();
    const idx = p.rows > 1 ? `${rn} = ${c.row}, ${cn} = ${c.col}` : `${cn} = ${c.col}`;
    const what = p.hover || p.quantity;                         // as the page names it ("PyTorch dh_total")
    this.tip.textContent = `t = ${st.t} · ${what}[${idx}] = ${fmt(x)}`;
    this.tip.dataset.row = String(c.row);
    this.tip.dataset.col = String(c.col);
    this.tip.dataset.quantity = p.quantity;
    if (p.gate) this.tip.dataset.gate = p.gate; else delete this.tip.dataset.gate;
    this.tip.dataset.value = String(x);
    this.tip.hidden = false;
    const rr = this.root.getBoundingClientRect();
    this.tip.style.left = `${Math.min(e.clientX - rr.left + 14, rr.width - 260)}px`;
    this.tip.style.top = `${e.clientY - rr.top + 14}px`;
  }

  pick(pn, e) {
    const c = this.cell(pn, e);
    if (!c) return;
    const w = pn.g.tab;
    const r0 = pn.p.row0 || 0;                                   // a gate block's first row in the whole weight
    const value = pn.p.rows === 1 ? { weight: w, j: r0 + c.col } : { weight: w, j: r0 + c.row, i: c.col };
    this.report();                                               // Python should know the step of the check too
    this.setTrigger("cell", value);
  }

  key(e) {
    if (!this.root || !this.root.isConnected || !this.h || e.defaultPrevented) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const arrow = e.key === "ArrowLeft" || e.key === "ArrowRight", space = e.key === " " || e.code === "Space";
    if (!arrow && !space) return;
    const target = (e.composedPath && e.composedPath()[0]) || e.target;     // inside the shadow root, not its host
    if (this.root.contains(target)) {                           // the viewer's own select and slider keep their keys
      const tag = target.tagName;
      if (tag === "SELECT" || (tag === "INPUT" && target.type === "range" && arrow)) return;
    } else if (ownsKeys(target, space)) return;
    if (arrow) {
      const dt = e.key === "ArrowLeft" ? -1 : 1;                 // position means time: ← is t − 1
      this.go(this.kOf(this.tOf(this.k) + dt));
    } else if (this.playing) this.stop(); else this.play();
    e.preventDefault();
  }
}

// elements outside the viewer that use ← → or Space themselves: text fields, selects, sliders, radios, and (for
// Space) a button or link, which Space presses
const OWN_ROLES = new Set(["slider", "textbox", "combobox", "listbox", "spinbutton", "searchbox", "menu", "menuitem",
                           "option", "radio", "radiogroup", "tab", "tablist"]);
function ownsKeys(node, space) {
  for (let n = node; n && n.nodeType === 1; n = n.parentElement || (n.getRootNode() && n.getRootNode().host)) {
    const tag = n.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT" || n.isContentEditable) return true;
    if (tag === "INPUT") return n.type !== "checkbox" || space;
    if (OWN_ROLES.has(n.getAttribute("role") || "")) return true;
    if (space && (tag === "BUTTON" || tag === "A" || tag === "SUMMARY" || n.getAttribute("role") === "button")) return true;
  }
  return false;
}

export default function (component) {
  const { data, parentElement, setStateValue, setTriggerValue } = component;
  let view = parentElement.__bpttView;
  if (!view) {
    view = new View(parentElement);
    parentElement.__bpttView = view;
  }
  view.load(data, setStateValue, setTriggerValue);
  return () => {
    view.destroy();
    delete parentElement.__bpttView;
  };
}
