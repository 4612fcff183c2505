// ES module entry point: the same objects as the CommonJS entry (index.js), so `instanceof` checks agree
// whichever way a program loads cliproxy. The default export is the whole API, as `require` returns it.
import cliproxy from './index.js';

export const { Client, CliproxyError, ERROR_CODES, serve } = cliproxy;
export default cliproxy;
