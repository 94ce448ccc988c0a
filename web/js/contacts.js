// Core module: contacts (filled in next).
export function setup(app) { // eslint-disable-line no-unused-vars
}
