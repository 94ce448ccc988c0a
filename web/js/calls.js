// STUB written by the core helper so app.js can import it. OWNER: the calls + Web Push helper — replace this
// file entirely (keep exporting `async function init(app)`; see the module contract at the top of app.js).
export async function init(app) { // eslint-disable-line no-unused-vars
}
