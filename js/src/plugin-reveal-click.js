// ferjax's reveal-by-click 2AFC trial as a jsPsych (>= 7.1) plugin, an ES module.
//
// A SIZE x SIZE canvas shows `blur` (the face in grayscale, box-blurred); every primary pointer press
// uncovers a disk of `radius` px of `face` (the colour original), cumulatively, exactly as ferjax's own
// page draws it. Two buttons; pressing one ends the trial. Clicks are recorded in display-frame pixels
// (integers 0..size-1 at any CSS size or zoom), with t = performance.now() since the face appeared (ms),
// and always kept in the trial's jsPsych data (`clicks`). Optionally they also go to a server, one
// request at a time in order, each retried until acknowledged; the trial ends once all are:
//   * ferjax: {api: "/api/p/<token>", trial: idx, labels: [names of labels 0..7]} speaks ferjax's event
//     API (start -> attempt and the server's button order; click; choice; images of that trial), so
//     ferjax stores, validates and exports the trial as for its own page;
//   * post_url: every click and the choice as JSON {event, kind, ...post_fields, x, y, t | chosen, rt}.
// A refusal (4xx) stops the sending and is kept in the data as `post_error`.
import { ParameterType } from "jspsych";

const info = {
  name: "ferjax-reveal-click",
  version: "0.1.0",
  parameters: {
    /** URL of the colour face, uncovered by clicks (plugin-preload's auto_preload finds it). */
    face: { type: ParameterType.IMAGE, default: null },
    /** URL of the blurred grayscale face shown at first. */
    blur: { type: ParameterType.IMAGE, default: null },
    /** Button texts, left to right (ferjax mode: taken from the server's button order). */
    choices: { type: ParameterType.STRING, array: true, default: [] },
    /** The value each button records (e.g. label ids); [] records the button's index. */
    values: { type: ParameterType.INT, array: true, default: [] },
    /** Canvas side in pixels: the frame clicks are recorded in. */
    size: { type: ParameterType.INT, default: 256 },
    /** Radius in pixels of the disk each click uncovers. */
    radius: { type: ParameterType.FLOAT, default: 15 },
    /** HTML above the canvas (e.g. an attention check's instruction). */
    prompt: { type: ParameterType.HTML_STRING, default: null },
    /** ferjax mode: {api, trial, labels}. */
    ferjax: { type: ParameterType.OBJECT, default: null },
    /** If set, every click and the choice are POSTed here as JSON. */
    post_url: { type: ParameterType.STRING, default: null },
    /** Extra fields merged into every body posted to post_url. */
    post_fields: { type: ParameterType.OBJECT, default: {} },
  },
  data: {
    /** [{x, y, t}]: frame pixels, ms since the face appeared. */
    clicks: { type: ParameterType.COMPLEX, array: true, nested: {
      x: { type: ParameterType.INT }, y: { type: ParameterType.INT }, t: { type: ParameterType.FLOAT } } },
    /** Index of the pressed button (0 = left) and its value (the label). */
    response: { type: ParameterType.INT },
    chosen: { type: ParameterType.INT },
    /** ms from the face's appearance to the button press. */
    rt: { type: ParameterType.FLOAT },
    /** ms from the first click to the button press (null without clicks): ferjax's trial `time`. */
    time_from_first_click: { type: ParameterType.FLOAT },
    face: { type: ParameterType.STRING },
    /** ferjax mode: the trial index and the attempt the server gave. */
    ferjax_trial: { type: ParameterType.INT },
    ferjax_attempt: { type: ParameterType.INT },
  },
};

const loadImage = (src) => new Promise((resolve, reject) => {
  const img = new Image();
  img.onload = () => resolve(img);
  img.onerror = () => reject(new Error(`image failed to load: ${src}`));
  img.src = src;
});

function eventId() {
  const a = new Uint8Array(16);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function post(url, body) {
  for (let wait = 100; ; wait = Math.min(2 * wait, 3000)) {
    let r = null;
    try {
      r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body), cache: "no-store" });
    } catch (e) { /* offline or the server restarting: retry */ }
    if (r && r.ok) return r.status === 204 ? null : r.json();
    if (r && r.status >= 400 && r.status < 500) {
      throw new Error((await r.json().catch(() => ({}))).error || `HTTP ${r.status}`);
    }
    await new Promise((res) => setTimeout(res, wait));
  }
}

class RevealClickPlugin {
  static info = info;

  constructor(jsPsych) { this.jsPsych = jsPsych; }

  trial(display, trial) {
    const N = trial.size, fx = trial.ferjax;
    const make = (tag, props) => Object.assign(document.createElement(tag), props);
    const root = make("div", { className: "ferjax-reveal" });
    if (trial.prompt !== null) root.append(make("div", { className: "ferjax-reveal-prompt", innerHTML: trial.prompt }));
    const canvas = make("canvas", { width: N, height: N, className: "ferjax-reveal-canvas" });
    canvas.style.touchAction = "none"; // a tap must not scroll or zoom
    const group = make("div", { className: "ferjax-reveal-buttons" });
    root.append(canvas, group);
    display.replaceChildren(root);
    const ctx = canvas.getContext("2d");
    const mask = make("canvas", { width: N, height: N }), layer = make("canvas", { width: N, height: N });
    let blur, face, faceUrl = trial.face, shown, attempt = null, values = trial.values.length ? trial.values : null, active = false;
    let chain = Promise.resolve(), refused = null;
    const clicks = [];
    const send = (url, body) => {
      chain = chain.then(() => (refused ? null : post(url, body))).catch((e) => { refused = e; });
    };
    const draw = () => {
      ctx.globalCompositeOperation = "source-over";
      ctx.drawImage(blur, 0, 0, N, N);
      const l = layer.getContext("2d");
      l.globalCompositeOperation = "source-over";
      l.clearRect(0, 0, N, N);
      l.drawImage(face, 0, 0, N, N);
      l.globalCompositeOperation = "destination-in"; // the face only where uncovered
      l.drawImage(mask, 0, 0);
      ctx.drawImage(layer, 0, 0);
    };

    const setup = async () => {
      let choices = trial.choices, blurUrl = trial.blur;
      if (fx) {
        const ack = await post(`${fx.api}/start`, { event: eventId(), trial: fx.trial });
        attempt = ack.attempt;
        values = ack.buttons;
        choices = ack.buttons.map((label) => fx.labels[label]);
        faceUrl = `${fx.api}/trial/${fx.trial}/face.png`;
        blurUrl = `${fx.api}/trial/${fx.trial}/blur.png`;
      }
      choices.forEach((text, i) => group.append(make("button", { type: "button", className: "jspsych-btn",
        textContent: text, value: String(i) })));
      [blur, face] = await Promise.all([loadImage(blurUrl), loadImage(faceUrl)]);
      draw();
      shown = performance.now();
      active = true;
      if (fx) root.dataset.trial = String(fx.trial);
      root.dataset.ready = "1"; // for pages and tests that wait for the trial
    };
    setup().catch((err) => { display.replaceChildren(); this.jsPsych.finishTrial({ error: String(err.message) }); });

    canvas.addEventListener("pointerdown", (e) => {
      if (!active || !e.isPrimary) return;
      e.preventDefault();
      const r = canvas.getBoundingClientRect(); // display-frame pixels whatever the CSS size or zoom
      const x = Math.floor((e.clientX - r.left) * N / r.width), y = Math.floor((e.clientY - r.top) * N / r.height);
      if (x < 0 || y < 0 || x >= N || y >= N) return;
      const now = performance.now();
      clicks.push({ x, y, t: now - shown });
      const m = mask.getContext("2d");
      m.fillStyle = "#fff";
      m.beginPath();
      m.arc(x + 0.5, y + 0.5, trial.radius, 0, 2 * Math.PI); // pixel (x, y) has its centre at x + 0.5
      m.fill();
      draw();
      if (fx) send(`${fx.api}/click`, { event: eventId(), trial: fx.trial, attempt, x, y, t: now / 1000 });
      if (trial.post_url) send(trial.post_url, { event: eventId(), kind: "click", ...trial.post_fields, x, y, t: now - shown });
    });

    group.addEventListener("click", async (e) => {
      const b = e.target.closest("button");
      if (!active || !b) return;
      active = false;
      for (const other of group.children) other.disabled = true;
      const now = performance.now(), rt = now - shown, response = Number(b.value);
      const chosen = values ? values[response] : response;
      if (fx) send(`${fx.api}/choice`, { event: eventId(), trial: fx.trial, attempt, label: chosen, t: now / 1000,
        shown: shown / 1000 });
      if (trial.post_url) send(trial.post_url, { event: eventId(), kind: "choice", ...trial.post_fields, chosen, rt });
      await chain;
      const data = { clicks, response, chosen, rt, face: faceUrl,
        time_from_first_click: clicks.length ? rt - clicks[0].t : null };
      if (fx) Object.assign(data, { ferjax_trial: fx.trial, ferjax_attempt: attempt });
      if (refused) data.post_error = String(refused.message);
      display.replaceChildren();
      this.jsPsych.finishTrial(data);
    });
  }
}

export default RevealClickPlugin;
