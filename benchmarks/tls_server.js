// A native https server for the production-path benchmark (benchmarks/production.py).
//
// Node's built-in https module on OpenSSL: TLS and HTTP are not Python, so the server does not cap the
// clients the way a Python TLS server does. No npm packages. It serves just enough of the BCTRL API for
// the hook's upload_file and download_file, plus its own counters:
//
//   POST /v1/runtimes/{runtimeId}/files/upload  reads the multipart body, counts and discards it, checks
//                                               the body opens and closes with the Content-Type's
//                                               boundary, answers a RuntimeStagedFile
//   GET  /v1/files/{fileId}                     a File object for FILES_DIR/{fileId}.bin
//   GET  /v1/files/{fileId}/content             that file's bytes (Content-Length, octet-stream)
//   GET  /v1/auth/whoami                        a fixed WhoAmI (for a connection test)
//   GET  /_bench/stats                          the counters as JSON (not counted themselves)
//
// Every API request must carry "Authorization: Bearer <anything>". Usage:
//
//   node tls_server.js --cert CERT.pem --key KEY.pem --files-dir DIR [--port 0]
//
// It listens on 127.0.0.1 only and prints "TLS SERVER listening on https://127.0.0.1:PORT" when ready.
'use strict';

const fs = require('fs');
const https = require('https');
const path = require('path');

function parseArgs(argv) {
  const args = { port: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`missing value for ${argv[i]}`);
    args[name.replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = value;
  }
  for (const required of ['cert', 'key', 'filesDir']) {
    if (!args[required]) throw new Error(`--${required.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} is required`);
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const FILE_ID = /^[A-Za-z0-9_-]{1,128}$/;
const TAIL = 64; // bytes of each upload body kept to check its closing boundary

const stats = {
  connections: 0, // TLS connections that carried at least one API request (stats requests aside)
  uploads: 0,
  uploadBodyBytes: 0,
  lastUploadBodyBytes: 0,
  badUploads: 0, // bodies whose multipart framing was wrong (a broken client, not a slow one)
  lastBadUpload: null,
  metadataRequests: 0,
  contentRequests: 0,
  contentBytesSent: 0,
  unauthorized: 0,
  notFound: 0,
};

function sendJson(res, status, payload) {
  const body = Buffer.from(JSON.stringify(payload));
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.length });
  res.end(body);
}

function apiError(res, status, code, message) {
  sendJson(res, status, { error: { code, message } });
}

function fileObject(id, size) {
  return {
    id,
    name: `${id}.bin`,
    path: `bench/${id}.bin`,
    contentType: 'application/octet-stream',
    sizeBytes: size,
    createdAt: '2026-01-01T00:00:00Z',
    downloadUrl: `/v1/files/${id}/content`,
    source: 'upload',
    spaceId: 'space_bench',
    runId: null,
    runtimeId: null,
    expiresAt: null,
  };
}

function boundaryOf(contentType) {
  const match = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType || '');
  return match ? match[1] || match[2] : null;
}

function upload(req, res, runtimeId) {
  const boundary = boundaryOf(req.headers['content-type']);
  let count = 0;
  let head = null;
  let tail = Buffer.alloc(0);
  req.on('data', (chunk) => {
    if (head === null) head = Buffer.from(chunk.subarray(0, TAIL));
    count += chunk.length;
    tail = chunk.length >= TAIL ? chunk.subarray(chunk.length - TAIL) : Buffer.concat([tail, chunk]).subarray(-TAIL);
  });
  req.on('end', () => {
    const declared = req.headers['content-length'];
    const problems = [];
    if (!/^multipart\/form-data/i.test(req.headers['content-type'] || '')) problems.push('not multipart/form-data');
    if (!boundary) problems.push('no boundary');
    if (declared === undefined) problems.push('no Content-Length');
    else if (Number(declared) !== count) problems.push(`Content-Length ${declared} but ${count} bytes`);
    if (boundary && head && !head.toString('latin1').startsWith(`--${boundary}\r\n`)) problems.push('does not open with the boundary');
    if (boundary && !tail.toString('latin1').endsWith(`--${boundary}--\r\n`)) problems.push('does not close with the boundary');
    stats.uploads += 1;
    stats.uploadBodyBytes += count;
    stats.lastUploadBodyBytes = count;
    if (problems.length) {
      stats.badUploads += 1;
      stats.lastBadUpload = problems.join('; ');
      apiError(res, 400, 'bench.bad_multipart', problems.join('; '));
      return;
    }
    sendJson(res, 200, {
      id: `file_up_${stats.uploads}`,
      name: 'upload.bin',
      runtimeId,
      runtimePath: 'bench/upload.bin',
      sizeBytes: count,
      expiresAt: null,
    });
  });
}

function download(req, res, id, content) {
  if (!FILE_ID.test(id)) return apiError(res, 404, 'file.not_found', 'no such file');
  const file = path.join(args.filesDir, `${id}.bin`);
  fs.stat(file, (err, info) => {
    if (err || !info.isFile()) {
      stats.notFound += 1;
      return apiError(res, 404, 'file.not_found', `no file ${id}`);
    }
    if (!content) {
      stats.metadataRequests += 1;
      return sendJson(res, 200, fileObject(id, info.size));
    }
    stats.contentRequests += 1;
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': info.size,
      'Content-Disposition': `attachment; filename="${id}.bin"`,
    });
    if (req.method === 'HEAD') return res.end();
    const stream = fs.createReadStream(file, { highWaterMark: 1024 * 1024 });
    stream.on('data', (chunk) => {
      stats.contentBytesSent += chunk.length;
    });
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  });
}

function handle(req, res) {
  const url = req.url.split('?')[0];
  if (req.method === 'GET' && url === '/_bench/stats') return sendJson(res, 200, stats);
  if (!req.socket.benchCounted) {
    req.socket.benchCounted = true;
    stats.connections += 1;
  }
  if (!/^Bearer \S+/.test(req.headers.authorization || '')) {
    stats.unauthorized += 1;
    req.resume();
    return apiError(res, 401, 'auth.unauthorized', 'missing bearer token');
  }
  let match;
  if (req.method === 'POST' && (match = /^\/v1\/runtimes\/([^/]+)\/files\/upload$/.exec(url))) {
    return upload(req, res, decodeURIComponent(match[1]));
  }
  req.resume(); // no other route has a body worth reading
  if ((req.method === 'GET' || req.method === 'HEAD') && (match = /^\/v1\/files\/([^/]+)(\/content)?$/.exec(url))) {
    return download(req, res, decodeURIComponent(match[1]), Boolean(match[2]));
  }
  if (req.method === 'GET' && url === '/v1/auth/whoami') {
    return sendJson(res, 200, { organizationId: 'org_bench', defaultSpaceId: 'space_bench', scope: 'organization' });
  }
  stats.notFound += 1;
  return apiError(res, 404, 'route.not_found', `${req.method} ${url}`);
}

const server = https.createServer(
  { cert: fs.readFileSync(args.cert), key: fs.readFileSync(args.key) },
  handle,
);
server.keepAliveTimeout = 60000; // one client's 100 small uploads stay on one connection
server.requestTimeout = 900000; // a 1 GiB upload on a loaded machine may outlast Node's 300 s default
server.listen(Number(args.port), '127.0.0.1', () => {
  const { port } = server.address();
  process.stdout.write(`TLS SERVER listening on https://127.0.0.1:${port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
