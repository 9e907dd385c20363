#!/usr/bin/env node
// The Node anchor for bench/run and bench/stdio-throughput: does the same
// job as `wstether --stdio --url URL` with the npm `ws` client.
//
//   node bench/ws-client.js --url ws://127.0.0.1:PORT/ [--cork] [--deflate]
//   node bench/ws-client.js --url wss://localhost:PORT/ --ca CA.crt \
//        [--cert CLIENT.crt --key CLIENT.key] [--cork]
//
// For wss:// the server certificate is verified against --ca (and the URL's
// host name); --cert/--key present a client certificate (mTLS).
//
// Each stdin line (without its '\n') is sent as one text message; each
// received message is written to stdout followed by '\n'. On stdin EOF it
// waits until as many messages came back as it sent, then closes with 1000
// and exits 0. If the link ends before that, it says how many are missing on
// stderr and exits 1.
//
// It is written to be a fair, reasonably efficient client, not a naive one:
// stdin is read in 64 KiB chunks and split into Buffer slices (no strings),
// stdout writes are batched once per event-loop turn, and both directions
// apply back-pressure. --cork additionally corks the TCP socket around the
// sends of one stdin chunk, so they leave in one writev instead of one write
// per message: the second anchor.
'use strict';

const path = require('path');
let WebSocket;
try {
  WebSocket = require('ws');
} catch (e) {
  WebSocket = require(path.join(__dirname, 'node_modules', 'ws'));
}

function usage(msg) {
  if (msg) process.stderr.write(`ws-client: ${msg}\n`);
  process.stderr.write('usage: node ws-client.js --url ws[s]://HOST:PORT/ [--cork] [--deflate] ' +
    '[--ca FILE] [--cert FILE --key FILE]\n');
  process.exit(64);
}

const fs = require('fs');

let url = null;
let cork = false;
let deflate = false;
let ca = null;
let cert = null;
let key = null;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--url') url = argv[++i];
  else if (a.startsWith('--url=')) url = a.slice(6);
  else if (a === '--cork') cork = true;
  else if (a === '--deflate') deflate = true;
  else if (a === '--ca') ca = fs.readFileSync(argv[++i]);
  else if (a === '--cert') cert = fs.readFileSync(argv[++i]);
  else if (a === '--key') key = fs.readFileSync(argv[++i]);
  else if (a === '--help' || a === '-h') usage();
  else usage(`unknown argument '${a}'`);
}
if (!url) usage('--url is required');
if ((cert === null) !== (key === null)) usage('--cert and --key go together');

const SEND_HIGH = 4 * 1024 * 1024; // pause stdin above this many unsent bytes

let sent = 0;
let received = 0;
let eof = false;
let closing = false;
let partial = null; // bytes of an unfinished line carried to the next chunk

// ---- stdout, batched per event-loop turn
let outParts = [];
let flushScheduled = false;

function flushOut() {
  flushScheduled = false;
  if (outParts.length === 0) return;
  const buf = outParts.length === 1 ? outParts[0] : Buffer.concat(outParts);
  outParts = [];
  if (!process.stdout.write(buf)) {
    ws.pause();
    process.stdout.once('drain', () => ws.resume());
  }
}

const NL = Buffer.from('\n');

// ---- the link
// --deflate: offer permessage-deflate and compress messages of 32 bytes or
// more, as wstether with link.compression = "deflate" (ws's default is 1024)
const wsOptions = { perMessageDeflate: deflate ? { threshold: 32 } : false, maxPayload: 0 };
if (ca) wsOptions.ca = ca;
if (cert) {
  wsOptions.cert = cert;
  wsOptions.key = key;
}
const ws = new WebSocket(url, wsOptions);

ws.on('message', (data) => {
  // data is a Buffer (or an array of Buffers for fragmented messages)
  if (Array.isArray(data)) outParts.push(...data);
  else outParts.push(data);
  outParts.push(NL);
  received++;
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushOut);
  }
  maybeFinish();
});

ws.on('open', () => {
  process.stdin.on('data', onStdin);
  process.stdin.on('end', onStdinEnd);
  process.stdin.resume();
});

ws.on('error', (err) => {
  process.stderr.write(`ws-client: ${err.message}\n`);
});

ws.on('close', (code) => {
  flushOut();
  if (received < sent || !eof) {
    process.stderr.write(
      `ws-client: link closed (code ${code}) with ${sent - received} of ${sent} ` +
        `echoes missing${eof ? '' : ', stdin not finished'}\n`);
    process.exitCode = 1;
  }
  process.stdin.destroy();
});

function send(line) {
  ws.send(line, { binary: false });
  sent++;
}

function onStdin(chunk) {
  let start = 0;
  const s = cork ? ws._socket : null;
  if (s) s.cork();
  if (partial) {
    const nl = chunk.indexOf(10);
    if (nl < 0) {
      partial = Buffer.concat([partial, chunk]);
      if (s) s.uncork();
      return;
    }
    send(Buffer.concat([partial, chunk.subarray(0, nl)]));
    partial = null;
    start = nl + 1;
  }
  for (;;) {
    const nl = chunk.indexOf(10, start);
    if (nl < 0) break;
    send(chunk.subarray(start, nl));
    start = nl + 1;
  }
  if (start < chunk.length) partial = Buffer.from(chunk.subarray(start));
  if (s) s.uncork();
  if (ws.bufferedAmount > SEND_HIGH && ws._socket) {
    process.stdin.pause();
    // messages waiting for zlib count in bufferedAmount but not in the
    // socket's buffer, which may never need a 'drain': poll instead
    if (deflate) waitDeflated();
    else ws._socket.once('drain', () => process.stdin.resume());
  }
}

function waitDeflated() {
  if (ws.bufferedAmount <= SEND_HIGH / 2) process.stdin.resume();
  else setTimeout(waitDeflated, 1);
}

function onStdinEnd() {
  if (partial && partial.length) send(partial);
  partial = null;
  eof = true;
  maybeFinish();
}

function maybeFinish() {
  if (eof && !closing && received >= sent) {
    closing = true;
    flushOut();
    ws.close(1000);
  }
}

process.stdin.pause();
