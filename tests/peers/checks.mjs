// What the Node peer clients share (ws_client.mjs, ws_h2_client.mjs, vite_hmr_client.mjs): one
// "ok NAME" / "not ok NAME: why" line per check (tests/peers/lib.bash's node_checks reads them), a
// DNS lookup that sends every name (*.localhost) to 127.0.0.1 while SNI and Host stay as given, a
// timeout as a rejecting promise, and the exit status.
let failed = 0;

export const check = (name, ok, why = '') => {
  console.log(ok ? `ok ${name}` : `not ok ${name}: ${why}`);
  if (!ok) failed++;
};

export const lookup = (host, opts, cb) => {
  if (typeof opts === 'function') [cb, opts] = [opts, {}];
  if (opts && opts.all) cb(null, [{ address: '127.0.0.1', family: 4 }]);
  else cb(null, '127.0.0.1', 4);
};

export const timeout = (ms, what) =>
  new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms).unref());

// Runs `main`; exits 1 when a check failed or main threw (as one more "not ok" line), else 0.
export function run(main) {
  main().then(
    () => process.exit(failed ? 1 : 0),
    (e) => {
      console.log(`not ok the client script finished: ${e.message}`);
      process.exit(1);
    },
  );
}
