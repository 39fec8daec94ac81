// "jspsych" for ES modules on a page that loaded jsPsych's browser build with a classic <script>.
// jsPsych's own ES build (dist/index.js) imports CommonJS packages that browsers cannot import
// natively, so a page without a bundler maps the name "jspsych" to this file in an import map;
// a bundler resolves "jspsych" from node_modules instead and never sees this file.
const m = globalThis.jsPsychModule;
if (!m) throw new Error("load node_modules/jspsych/dist/index.browser.min.js before the ES modules");
export const { ParameterType, initJsPsych, JsPsych } = m;
export default m;
