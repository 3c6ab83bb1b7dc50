// Makes the bad tokens of tests/peers/http_tunnel_tokens.sh from a good one (from `wtmesh token`):
// decodes it, changes one thing, and signs it again with the edge's own key (ES256, raw r||s), so the
// edge refuses it for exactly that reason and no other.
//   node forge_token.mjs SIGNING_KEY_PEM GOOD_TOKEN MODE
// MODE: expired | not_yet_valid | wrong_aud | alg_none | alg_hs256 | bad_sig | no_kid | too_long |
//       missing_exp | foreign_host
import crypto from 'node:crypto';
import fs from 'node:fs';

const [keyFile, good, mode] = process.argv.slice(2);
if (!keyFile || !good || !mode) {
  console.error('usage: node forge_token.mjs SIGNING_KEY_PEM GOOD_TOKEN MODE');
  process.exit(2);
}
const key = crypto.createPrivateKey(fs.readFileSync(keyFile));
const b64 = (x) => Buffer.from(x).toString('base64url');
const [h64, p64] = good.split('.');
const header = JSON.parse(Buffer.from(h64, 'base64url').toString());
const payload = JSON.parse(Buffer.from(p64, 'base64url').toString());
const now = Math.floor(Date.now() / 1000);

function sign(hdr, pl) {
  const input = `${b64(JSON.stringify(hdr))}.${b64(JSON.stringify(pl))}`;
  const sig = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64(sig)}`;
}

let out;
switch (mode) {
  case 'expired':  // well past exp + the edge's 30 s leeway
    out = sign(header, { ...payload, iat: now - 900, nbf: now - 900, exp: now - 300 });
    break;
  case 'not_yet_valid':
    out = sign(header, { ...payload, iat: now, nbf: now + 600, exp: now + 1200 });
    break;
  case 'wrong_aud':
    out = sign(header, { ...payload, aud: 'someone-else' });
    break;
  case 'alg_none':
    out = `${b64(JSON.stringify({ ...header, alg: 'none' }))}.${p64}.`;
    break;
  case 'alg_hs256': {  // the classic confusion: HMAC keyed with something public
    const input = `${b64(JSON.stringify({ ...header, alg: 'HS256' }))}.${p64}`;
    out = `${input}.${crypto.createHmac('sha256', header.kid).update(input).digest('base64url')}`;
    break;
  }
  case 'bad_sig': {  // a valid token with one signature byte changed
    const parts = good.split('.');
    const sig = Buffer.from(parts[2], 'base64url');
    sig[10] ^= 0x01;
    out = `${parts[0]}.${parts[1]}.${b64(sig)}`;
    break;
  }
  case 'no_kid': {
    const { kid, ...rest } = header;
    out = sign(rest, payload);
    break;
  }
  case 'too_long':  // lifetime over the 30-day maximum
    out = sign(header, { ...payload, iat: now, nbf: now, exp: now + 31 * 86400 });
    break;
  case 'missing_exp': {
    const { exp, ...rest } = payload;
    out = sign(header, rest);
    break;
  }
  case 'foreign_host':  // correctly signed, but for a name outside the edge's domain
    out = sign(header, { ...payload, hosts: ['app.example.com'] });
    break;
  default:
    console.error(`unknown mode ${mode}`);
    process.exit(2);
}
console.log(out);
