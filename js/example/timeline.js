// An example jsPsych timeline around ferjax's reveal-click plugin, on ferjax's server
// (`ferjax experiment serve --jspsych js`, then /jspsych/example/index.html?token=<a participant's token>).
// jsPsych's own plugins do what ferjax's built-in page does by hand: external-html (consent),
// browser-check (the minimum window, browser and screen), preload (every image, with a progress
// bar) and fullscreen. ferjax's server still decides the trial order, breaks and attention checks
// (GET state before each trial) and stores every click before acknowledging it.
import RevealClickPlugin from "../src/plugin-reveal-click.js";

const api = `/api/p/${new URLSearchParams(location.search).get("token")}`;
const get = (path) => fetch(api + path, { cache: "no-store" }).then((r) => r.json());
const fmt = (s, v) => s.replace(/\{(\w+)\}/g, (m, k) => (k in v ? v[k] : m));
let state = await get("/state");
const { trials } = await get("/images");

const jsPsych = initJsPsych({
  on_finish: () => {
    window.__results = jsPsych.data.get().values();
    document.body.dataset.done = "1";
    if (state.completion_url) location.assign(state.completion_url);
  },
});
jsPsych.data.addProperties({ screen_w: screen.width, screen_h: screen.height, dpr: devicePixelRatio });

const consent = { type: jsPsychExternalHtml, url: "consent.html", cont_btn: "consent-agree",
  check_fn: () => document.getElementById("consent-box").checked };
const check = {
  type: jsPsychBrowserCheck,
  features: ["width", "height", "browser", "browser_version", "mobile", "os"], // no vsync, webcam, microphone
  minimum_width: state.min_viewport[0], minimum_height: state.min_viewport[1],
  on_finish: (d) => fetch(`${api}/environment`, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user_agent: navigator.userAgent.slice(0, 512), screen_w: screen.width,
      screen_h: screen.height, viewport_w: d.width, viewport_h: d.height, dpr: devicePixelRatio,
      touch: Boolean(d.mobile) }) }),
};
const preload = { type: jsPsychPreload, show_progress_bar: true,
  images: trials.flatMap((i) => [`${api}/trial/${i}/blur.png`, `${api}/trial/${i}/face.png`]) };
const fullscreen = { type: jsPsychFullscreen, fullscreen_mode: true };

const fetchState = { type: jsPsychCallFunction, async: true,
  func: (done) => { get("/state").then((s) => { state = s; done(); }); } };
const pauseText = () => (state.phase === "instructions" ? state.texts.instructions
  : state.trial.block === 1 ? state.texts.practice_done
    : fmt(state.texts.break, { s: state.trial.block - 1, S: state.sessions }));
const pause = {
  timeline: [{ type: jsPsychHtmlButtonResponse, stimulus: () => `<p id="pause">${pauseText()}</p>`,
    choices: () => [state.texts.continue] }],
  conditional_function: () => state.phase === "instructions" || state.phase === "break",
};
const reveal = {
  timeline: [{ type: RevealClickPlugin, ferjax: () => ({ api, trial: state.trial.idx, labels: state.labels }),
    prompt: () => (state.trial.kind === "catch"
      ? `<p class="catch">${fmt(state.texts.catch, { label: state.labels[state.trial.press] })}</p>` : null) }],
  conditional_function: () => state.phase !== "done",
};

jsPsych.run([consent, check, preload, fullscreen,
  { timeline: [fetchState, pause, reveal], loop_function: () => state.phase !== "done" }]);
