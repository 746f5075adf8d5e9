"""
harness.py - black-box test harness for `ehr serve` (Python 3 standard library).

A test file starts one or more real servers on loopback ports with temporary
databases, talks HTTP to them and checks the answers against the FHIR R4
RESTful API specification (http://hl7.org/fhir/R4/http.html).

    from harness import *

    srv = start_server()              # ehr serve --port P --db TMP/ehr.db
    c = srv.client()

    def create_patient():
        r = c.post('/fhir/Patient', json={'resourceType': 'Patient'})
        expect_status(r, 201)
    test_expect_success('create answers 201', create_patient)

    test_done()                       # stops servers, prints the summary, exits

Output is TAP-like, as git's test suite prints it:

    ok 1 - create answers 201
    not ok 2 - read answers 200
    #   expected status 200, got 404
    #   last response: GET /fhir/Patient/x -> 404 ...
    skip 3 - round trip # ../shared/data is absent

Environment:
    EHR_BIN          the ehr binary (required; tests/run-api.sh sets it)
    EHR_API_RUN      only run cases whose name contains one of these
                     comma-separated substrings (others print as skipped;
                     a case may rely on state an earlier case set up)
    EHR_API_VERBOSE  1: print every request and its status
    EHR_API_KEEP     1: keep the temporary directories (databases, logs)
    EHR_API_AUTH     0: start servers with --insecure-no-auth instead of the
                     default: an admin user made with `ehr user add` and a
                     token from `ehr token`, sent by every Client (see
                     docs/security.md)
    EHR_TEST_STORE   postgres: every server runs on PostgreSQL (--postgres),
                     each Server on a database of its own in a throwaway
                     cluster (tests/pg/cluster.sh); Server.db is then the
                     conninfo. Default: sqlite (--db FILE).
    EHR_TEST_PG      with EHR_TEST_STORE=postgres: the base conninfo of a
                     running cluster ("host=DIR port=5432 user=ehr", as
                     tests/pg/cluster.sh prints); without it, the harness
                     starts a cluster of its own and stops it at the end
"""

import decimal
import gzip
import http.client
import json as jsonlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import zlib

__all__ = [
    'EHR_BIN', 'ROOT', 'DATA_DIR', 'Server', 'Client', 'Response', 'TestFailure', 'Skip',
    'start_server', 'test_expect_success', 'test_skip', 'test_done', 'check', 'eq',
    'expect_status', 'expect_outcome', 'expect_fhir_json', 'outcome_expressions',
    'parse_instant', 'parse_etag_version', 'location_parts', 'strip_meta',
    'bundle_entries', 'follow_pages', 'loads_exact', 'quote', 'note', 'unique',
    'json_equal', 'json_diff', 'dumps', 'Server', 'ServerError',
    'STORE', 'pg_base', 'pg_new_db', 'pg_sql', 'store_args',
]

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
DATA_DIR = os.path.normpath(os.path.join(ROOT, '..', 'shared', 'data'))
EHR_BIN = os.environ.get('EHR_BIN', '')
VERBOSE = os.environ.get('EHR_API_VERBOSE', '') not in ('', '0')
KEEP = os.environ.get('EHR_API_KEEP', '') not in ('', '0')
AUTH = os.environ.get('EHR_API_AUTH', '1') not in ('', '0')

START_TIMEOUT = 20.0   # seconds until GET /fhir/metadata must answer 200
STOP_TIMEOUT = 10.0    # seconds between SIGTERM and SIGKILL
HTTP_TIMEOUT = 60.0    # per request; generous because of sanitizer builds

FHIR_JSON = 'application/fhir+json'

STORE = os.environ.get('EHR_TEST_STORE', 'sqlite') or 'sqlite'
if STORE not in ('sqlite', 'postgres'):
    raise SystemExit('EHR_TEST_STORE must be sqlite or postgres, not %r' % STORE)


# --------------------------------------------------------------------------
# PostgreSQL (EHR_TEST_STORE=postgres)

PG_CLUSTER = os.path.join(ROOT, 'tests', 'pg', 'cluster.sh')
_pg = {'base': os.environ.get('EHR_TEST_PG') or None, 'own': None}


def pg_base():
    """The base conninfo of the test cluster, started on first use when
    EHR_TEST_PG does not name one (and stopped at exit)."""
    if _pg['base'] is None:
        p = subprocess.run([PG_CLUSTER, 'start'], capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise ServerError('cannot start a PostgreSQL cluster: %s' % p.stderr.strip())
        _pg['base'] = p.stdout.strip().splitlines()[-1]
        _pg['own'] = _pg['base'].split()[0][len('host='):]
        import atexit
        atexit.register(lambda: subprocess.run([PG_CLUSTER, 'stop', _pg['own']],
                                               capture_output=True, timeout=120))
    return _pg['base']


def pg_sql(conninfo, sql):
    """Run SQL with psql; returns (exit status, output)."""
    p = subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-d', conninfo],
                       input=sql, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


_pg_n = [0]


def pg_new_db(template=None):
    """A new, empty database in the test cluster (or a copy of template,
    a conninfo); returns its conninfo."""
    with _unique_lock:
        _pg_n[0] += 1
        name = 'ehr_%d_%d_%s' % (os.getpid(), _pg_n[0], os.urandom(3).hex())
    base = pg_base()
    sql = 'CREATE DATABASE %s' % name
    if template:
        sql += ' TEMPLATE %s' % template.split('dbname=')[1].split()[0]
    rc, out = pg_sql(base + ' dbname=postgres', sql + ';')
    if rc != 0:
        raise ServerError('cannot create a database: %s' % out.strip())
    return '%s dbname=%s' % (base, name)


def store_args(db, store=None):
    """The store option for db: --postgres CONNINFO or --db PATH."""
    return ['--postgres', db] if (store or STORE) == 'postgres' else ['--db', db]


# --------------------------------------------------------------------------
# Failures

class TestFailure(Exception):
    """An assertion in a test case failed; the message says what and why."""


class Skip(Exception):
    """Raised by a test case to report itself skipped, with the reason."""


class ServerError(Exception):
    """The server would not start or died."""


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def eq(actual, expected, what):
    if actual != expected:
        raise TestFailure('%s: expected %r, got %r' % (what, expected, actual))


def note(msg):
    """A diagnostic line printed under the current case (does not fail it)."""
    for line in str(msg).splitlines():
        print('#   note: ' + line)


_unique_lock = threading.Lock()
_unique_n = [0]


def unique(prefix='t'):
    """A value unique within this process run (and very likely across runs)."""
    with _unique_lock:
        _unique_n[0] += 1
        return '%s-%d-%d-%d' % (prefix, os.getpid(), int(time.time() * 1000) % 100000000,
                                _unique_n[0])


def quote(s):
    """Percent-encode a query parameter value (keeps ':' and '/' readable)."""
    return urllib.parse.quote(s, safe=':/')


# --------------------------------------------------------------------------
# Servers

def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
    finally:
        s.close()


_servers = []


def _killpg(p):
    """SIGKILL the server's process group (it was started in its own session).
    Only while the process has not been reaped, so that the group id is still ours."""
    if p.returncode is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Server:
    """
    One `ehr serve` process on a loopback port. The database lives in a
    temporary directory (or at db=PATH) and survives restarts, so a test can
    SIGKILL the server and start it again on the same data.
    """

    def __init__(self, extra_args=(), db=None, name='ehr', auth=None, store=None):
        if not EHR_BIN:
            raise ServerError('EHR_BIN is not set (run through tests/run-api.sh)')
        if not os.access(EHR_BIN, os.X_OK):
            raise ServerError('EHR_BIN=%s is not an executable file' % EHR_BIN)
        self.name = name
        self.tmpdir = tempfile.mkdtemp(prefix='ehr-api-%s-' % name)
        self.store = store or STORE   # this server's backend (default: EHR_TEST_STORE)
        if self.store == 'postgres':
            self.db = db or pg_new_db()   # a conninfo
        else:
            self.db = db or os.path.join(self.tmpdir, 'ehr.db')
        self.extra_args = list(extra_args)
        self.proc = None
        self.port = None
        self.starts = 0
        self.log_path = None
        self.logs = []           # every log file, in start order
        self.exit_codes = []     # (how it was stopped, return code)
        self.auth = AUTH if auth is None else auth
        self.token = None        # the harness admin's bearer token (auth on)
        _servers.append(self)

    # -- the ehr program on this server's database

    def ehr(self, *args, check_rc=True, input=None):
        """Run `ehr ARGS --db DB` (or --postgres); returns (exit status, stdout, stderr)."""
        cmd = [EHR_BIN] + list(args) + store_args(self.db, self.store)
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=120,
                           cwd=self.tmpdir)
        if check_rc and p.returncode != 0:
            raise ServerError('%s exited %d: %s' % (' '.join(args[:2]), p.returncode,
                                                     p.stderr.strip()))
        return p.returncode, p.stdout, p.stderr

    def _bootstrap_token(self):
        """An admin user for the harness, and a day-long token for it."""
        pw = 'harness-%d-%s' % (os.getpid(), os.urandom(6).hex())
        self.ehr('user', 'add', '--username', 'harness-admin', '--password', pw,
                 '--role', 'admin')
        _, out, _ = self.ehr('token', '--user', 'harness-admin', '--scope', 'user/*.cruds',
                             '--ttl', '86400')
        return out.strip().splitlines()[-1]

    # -- life cycle

    def command(self, port):
        auth = [] if self.auth else ['--insecure-no-auth']
        return ([EHR_BIN, 'serve', '--port', str(port)] + store_args(self.db, self.store) + auth +
                self.extra_args)

    def start(self, timeout=START_TIMEOUT):
        """Start and wait until GET /fhir/metadata answers 200."""
        if self.proc is not None:
            raise ServerError('server already running')
        if self.auth and self.token is None:
            self.token = self._bootstrap_token()
        last_err = None
        for _attempt in range(3):   # a port picked free may be taken before we bind it
            port = _free_port()
            self.starts += 1
            self.log_path = os.path.join(self.tmpdir, 'server-%d.log' % self.starts)
            self.logs.append(self.log_path)
            log = open(self.log_path, 'wb')
            try:
                # its own process group: a Ctrl-C on the test does not reach it
                # directly, and a kill takes any children with it
                self.proc = subprocess.Popen(self.command(port), stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT,
                                             cwd=self.tmpdir, start_new_session=True)
            finally:
                log.close()
            self.port = port
            try:
                self._wait_ready(timeout)
                return self
            except ServerError as e:
                last_err = e
                exited = self.proc.poll() is not None
                self._reap('failed start')
                if not exited or 'in use' not in self.log_text().lower():
                    break
        raise last_err

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        why = 'no answer'
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise ServerError('server exited with status %d before answering; its output:\n%s'
                                  % (rc, self.log_text()))
            try:
                conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=2)
                conn.request('GET', '/fhir/metadata', headers={'Accept': FHIR_JSON})
                r = conn.getresponse()
                r.read()
                conn.close()
                if r.status == 200:
                    return
                why = 'GET /fhir/metadata answered %d' % r.status
            except (OSError, http.client.HTTPException) as e:
                why = str(e) or e.__class__.__name__
            time.sleep(0.05)
        raise ServerError('server did not answer GET /fhir/metadata with 200 within %gs (%s); '
                          'its output:\n%s' % (timeout, why, self.log_text()))

    def _reap(self, how, timeout=STOP_TIMEOUT):
        p = self.proc
        if p is None:
            return None
        _killpg(p)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        self.exit_codes.append((how, rc))
        self.proc = None
        return rc

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after timeout. Returns the exit status
        (negative: killed by that signal), or None when not running."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
                how = 'SIGTERM'
            except subprocess.TimeoutExpired:
                _killpg(p)
                p.wait(timeout)
                how = 'SIGTERM, then SIGKILL after %gs' % timeout
        else:
            how = 'had already exited'
        rc = p.returncode
        self.exit_codes.append((how, rc))
        self.proc = None
        return rc

    def kill(self):
        """SIGKILL, now (a crash). Returns when the process is gone."""
        p = self.proc
        if p is None:
            return
        _killpg(p)
        p.wait(STOP_TIMEOUT)
        self.exit_codes.append(('SIGKILL', p.returncode))
        self.proc = None

    def restart(self, timeout=START_TIMEOUT):
        """Stop (if running) and start again on the same database."""
        self.stop()
        return self.start(timeout)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        self.stop()
        if not KEEP:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    # -- inspection

    def log_text(self, path=None, limit=20000):
        path = path or self.log_path
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except OSError:
            return '(no output)'
        text = data.decode('utf-8', 'replace')
        if len(text) > limit:
            text = '...\n' + text[-limit:]
        return text or '(no output)'

    def all_logs(self):
        return '\n'.join(self.log_text(p, limit=10 ** 7) for p in self.logs)

    def base(self):
        return 'http://127.0.0.1:%d' % self.port

    def client(self, **kw):
        return Client(self, **kw)


def start_server(extra_args=(), name='ehr'):
    """A started Server, or print why it failed and exit 1 (nothing can run)."""
    try:
        return Server(extra_args, name=name).start()
    except ServerError as e:
        print('Bail out! cannot start the server: %s' % e)
        for s in _servers:
            s.cleanup()
        sys.exit(1)


SANITIZER_PATTERNS = re.compile(
    r'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|ERROR: ThreadSanitizer|'
    r'WARNING: ThreadSanitizer|Segmentation fault|double free|stack smashing')


# --------------------------------------------------------------------------
# HTTP client

class Response:
    def __init__(self, method, path, status, reason, headers, body):
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        self.headers = headers        # http.client.HTTPMessage: case-insensitive .get()
        self.body = body              # bytes as received (not decompressed)
        self._json = None
        self._json_done = False

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def header_all(self, name):
        return self.headers.get_all(name) or []

    def content(self):
        """The body, gunzipped when the server sent Content-Encoding: gzip."""
        enc = (self.header('Content-Encoding') or '').lower()
        if enc == 'gzip':
            return gzip.decompress(self.body)
        if enc == 'deflate':
            return zlib.decompress(self.body)
        return self.body

    @property
    def json(self):
        """The parsed body (decimals as decimal.Decimal), or None."""
        if not self._json_done:
            self._json_done = True
            try:
                self._json = loads_exact(self.content())
            except (ValueError, OSError, zlib.error):
                self._json = None
        return self._json

    def content_type(self):
        return (self.header('Content-Type') or '').split(';')[0].strip().lower()

    def describe(self, limit=3000):
        text = self.body.decode('utf-8', 'replace') if isinstance(self.body, bytes) else str(self.body)
        if (self.header('Content-Encoding') or '').lower() == 'gzip':
            try:
                text = '(gzip) ' + self.content().decode('utf-8', 'replace')
            except Exception:
                pass
        if len(text) > limit:
            text = text[:limit] + '... (%d bytes)' % len(self.body)
        hdrs = ', '.join('%s: %s' % (k, v) for k, v in self.headers.items())
        return '%s %s -> %d %s\n[%s]\n%s' % (self.method, self.path, self.status, self.reason,
                                            hdrs, text)

    def __repr__(self):
        return '<Response %s %s %d>' % (self.method, self.path, self.status)


_last = threading.local()
_last_global = [None]


def _remember(resp):
    _last.resp = resp
    _last_global[0] = resp


def last_response():
    return getattr(_last, 'resp', None) or _last_global[0]


class Client:
    """
    An HTTP/1.1 client on one keep-alive connection (use one Client per
    thread). retry=True reopens a reused connection once if the server had
    closed it before answering; crash tests pass retry=False so that every
    request is sent exactly once.
    """

    def __init__(self, server, timeout=HTTP_TIMEOUT, retry=True, accept=FHIR_JSON,
                 token='server'):
        self.server = server
        # the bearer token sent with every request: the server's harness admin
        # by default; None sends none
        self.token = server.token if token == 'server' else token
        self.timeout = timeout
        self.retry = retry
        self.accept = accept
        self.conn = None
        self.used = False

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _connect(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection('127.0.0.1', self.server.port,
                                                   timeout=self.timeout)
            self.used = False
        return self.conn

    def request(self, method, path, body=None, headers=None, json=None, content_type=None):
        """
        Send one request. json= is serialised as the body with Content-Type
        application/fhir+json unless content_type= or a Content-Type header says
        otherwise. Returns a Response; raises OSError/HTTPException on transport
        failure.
        """
        hdrs = {}
        if self.accept is not None:
            hdrs['Accept'] = self.accept
        if self.token:
            hdrs['Authorization'] = 'Bearer ' + self.token
        if json is not None:
            body = dumps(json).encode('utf-8')
            hdrs['Content-Type'] = FHIR_JSON
        if isinstance(body, str):
            body = body.encode('utf-8')
        if content_type is not None:
            hdrs['Content-Type'] = content_type
        for k, v in (headers or {}).items():
            # headers={'Accept': None} removes a default header
            for existing in list(hdrs):
                if existing.lower() == k.lower():
                    del hdrs[existing]
            if v is not None:
                hdrs[k] = v
        if body is not None and not any(k.lower() == 'content-length' for k in hdrs):
            hdrs['Content-Length'] = str(len(body))
        attempts = 2 if self.retry else 1
        for attempt in range(attempts):
            conn = self._connect()
            reused = self.used
            try:
                conn.request(method, path, body=body, headers=hdrs)
                self.used = True
                r = conn.getresponse()
                data = r.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self.close()
                if reused and attempt + 1 < attempts:
                    continue
                raise
            except (OSError, http.client.HTTPException):
                self.close()
                raise
            resp = Response(method, path, r.status, r.reason, r.headers, data)
            if r.will_close:
                self.close()
            _remember(resp)
            if VERBOSE:
                print('#   %s %s -> %d (%d bytes)' % (method, path, r.status, len(data)))
            return resp

    def get(self, path, **kw):
        return self.request('GET', path, **kw)

    def post(self, path, **kw):
        return self.request('POST', path, **kw)

    def put(self, path, **kw):
        return self.request('PUT', path, **kw)

    def delete(self, path, **kw):
        return self.request('DELETE', path, **kw)

    def patch(self, path, ops, headers=None, **kw):
        """JSON Patch (RFC 6902) with Content-Type application/json-patch+json."""
        body = dumps(ops).encode('utf-8')
        return self.request('PATCH', path, body=body, headers=headers,
                            content_type='application/json-patch+json', **kw)


# --------------------------------------------------------------------------
# JSON with exact numbers

def loads_exact(data):
    """Parse JSON keeping decimals exact (decimal.Decimal), so that 1.50
    compares equal to 1.5 by value; raw text is checked separately where it
    matters."""
    if isinstance(data, (bytes, bytearray)):
        data = data.decode('utf-8')
    return jsonlib.loads(data, parse_float=decimal.Decimal)


def dumps(obj):
    """Serialise JSON; decimal.Decimal values are written with their exact text."""
    return _dumps_value(obj)


def _dumps_value(v):
    if isinstance(v, decimal.Decimal):
        return getattr(v, 'text', None) or str(v)   # keep the text a number was read with
    if isinstance(v, dict):
        return '{' + ','.join(jsonlib.dumps(k) + ':' + _dumps_value(x) for k, x in v.items()) + '}'
    if isinstance(v, (list, tuple)):
        return '[' + ','.join(_dumps_value(x) for x in v) + ']'
    return jsonlib.dumps(v, ensure_ascii=False)


def json_equal(a, b):
    return json_diff(a, b) is None


def json_diff(a, b, path='$'):
    """None when equal (numbers by value, bool never equal to a number),
    else the first difference as text."""
    if isinstance(a, bool) or isinstance(b, bool):
        if a is b or (type(a) is bool and type(b) is bool and a == b):
            return None
        return '%s: %r != %r' % (path, a, b)
    num = (int, float, decimal.Decimal)
    if isinstance(a, num) and isinstance(b, num):
        if decimal.Decimal(str(a)) == decimal.Decimal(str(b)):
            return None
        return '%s: %s != %s' % (path, a, b)
    if type(a) is not type(b):
        return '%s: %s %r != %s %r' % (path, type(a).__name__, _short(a), type(b).__name__,
                                       _short(b))
    if isinstance(a, dict):
        for k in a:
            if k not in b:
                return '%s.%s: missing in the second' % (path, k)
        for k in b:
            if k not in a:
                return '%s.%s: unexpected in the second (%r)' % (path, k, _short(b[k]))
        for k in a:
            d = json_diff(a[k], b[k], path + '.' + k)
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return '%s: %d items != %d items' % (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            d = json_diff(x, y, '%s[%d]' % (path, i))
            if d:
                return d
        return None
    if a != b:
        return '%s: %r != %r' % (path, _short(a), _short(b))
    return None


def _short(v):
    s = repr(v)
    return s if len(s) < 200 else s[:200] + '...'


def strip_meta(res):
    """A copy of a resource without its meta element."""
    return {k: v for k, v in res.items() if k != 'meta'}


# --------------------------------------------------------------------------
# FHIR helpers

_INSTANT = re.compile(r'^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$')


def parse_instant(s):
    """A FHIR instant ('2024-01-02T03:04:05.123+01:00') as exact seconds since
    the epoch (decimal.Decimal). Raises TestFailure when malformed."""
    import calendar
    m = _INSTANT.match(s or '')
    check(m, 'not a FHIR instant: %r' % (s,))
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    t = calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0))
    frac = decimal.Decimal('0' + m.group(7)) if m.group(7) else decimal.Decimal(0)
    tz = m.group(8)
    off = 0
    if tz != 'Z':
        sign = 1 if tz[0] == '+' else -1
        off = sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return decimal.Decimal(t - off) + frac


_ETAG = re.compile(r'^W/"([^"]+)"$')


def parse_etag_version(etag):
    """The version id in a weak ETag W/"3", checking the form."""
    m = _ETAG.match((etag or '').strip())
    check(m, 'ETag %r is not a weak ETag of the form W/"<versionId>"' % (etag,))
    return m.group(1)


def location_parts(loc, rtype=None):
    """(type, id, vid) from a Location header [base]/[type]/[id]/_history/[vid]."""
    check(loc, 'missing Location header')
    path = urllib.parse.urlsplit(loc).path if '://' in loc else loc.split('?')[0]
    m = re.search(r'(?:^|/)fhir/([A-Za-z]+)/([A-Za-z0-9\-\.]{1,64})/_history/([A-Za-z0-9\-\.]{1,64})$',
                  path)
    check(m, 'Location %r is not [base]/[type]/[id]/_history/[vid] with base .../fhir' % loc)
    if rtype:
        eq(m.group(1), rtype, 'resource type in Location')
    return m.group(1), m.group(2), m.group(3)


def expect_status(resp, *codes):
    if resp.status not in codes:
        raise TestFailure('%s %s: expected status %s, got %d %s' % (
            resp.method, resp.path, ' or '.join(str(c) for c in codes), resp.status, resp.reason))
    return resp


def expect_fhir_json(resp):
    """The response is FHIR JSON: Content-Type application/fhir+json (or
    application/json) and a body that parses to an object with resourceType."""
    ct = resp.content_type()
    check(ct in (FHIR_JSON, 'application/json'),
          '%s %s: Content-Type %r is not application/fhir+json' % (
              resp.method, resp.path, resp.header('Content-Type')))
    check(isinstance(resp.json, dict) and 'resourceType' in resp.json,
          '%s %s: body is not a FHIR JSON resource' % (resp.method, resp.path))
    return resp.json


def outcome_expressions(oo):
    out = []
    for issue in oo.get('issue', []) if isinstance(oo, dict) else []:
        out.extend(issue.get('expression', []) or [])
        out.extend(issue.get('location', []) or [])
    return out


def expect_outcome(resp, codes, expression=None):
    """
    The response has one of the statuses and an OperationOutcome body with at
    least one issue of severity error or fatal, each issue with a code.
    expression: a regular expression that some issue's expression (or
    location) must match in full, e.g. r'Patient\\.birthDate'.
    """
    if isinstance(codes, int):
        codes = (codes,)
    expect_status(resp, *codes)
    oo = expect_fhir_json(resp)
    eq(oo.get('resourceType'), 'OperationOutcome', 'resourceType of the error body')
    issues = oo.get('issue')
    check(isinstance(issues, list) and issues, 'OperationOutcome has no issue')
    for i in issues:
        check(i.get('severity') in ('fatal', 'error', 'warning', 'information'),
              'issue severity %r is not a valid code' % i.get('severity'))
        check(isinstance(i.get('code'), str) and i.get('code'), 'issue without a code')
    check(any(i.get('severity') in ('fatal', 'error') for i in issues),
          'OperationOutcome has no issue of severity error or fatal')
    if expression:
        exprs = outcome_expressions(oo)
        rx = re.compile(expression)
        check(any(rx.fullmatch(e) for e in exprs if isinstance(e, str)),
              'no issue expression matches %r (expressions: %r)' % (expression, exprs))
    return oo


def bundle_entries(bundle):
    return bundle.get('entry', []) or [] if isinstance(bundle, dict) else []


def follow_pages(client, path, max_pages=1000):
    """GET path and every `next` page; returns the list of page bundles.
    Next links may be absolute; they are followed on this server."""
    pages = []
    seen = set()
    while path and len(pages) < max_pages:
        check(path not in seen, 'paging loops: %s seen twice' % path)
        seen.add(path)
        r = client.get(path)
        expect_status(r, 200)
        b = expect_fhir_json(r)
        eq(b.get('resourceType'), 'Bundle', 'resourceType of %s' % path)
        pages.append(b)
        nxt = [l.get('url') for l in b.get('link', []) or [] if l.get('relation') == 'next']
        path = None
        if nxt:
            u = urllib.parse.urlsplit(nxt[0])
            path = u.path + ('?' + u.query if u.query else '')
    return pages


# --------------------------------------------------------------------------
# Test runner (git's test_expect_success, TAP-like output)

class _Run:
    n = 0
    failed = []
    skipped = 0
    passed = 0
    start = time.monotonic()
    selected = [s.strip() for s in os.environ.get('EHR_API_RUN', '').split(',') if s.strip()]


def _selected(name):
    return not _Run.selected or any(s in name for s in _Run.selected)


def test_skip(name, reason):
    _Run.n += 1
    _Run.skipped += 1
    print('skip %d - %s # %s' % (_Run.n, name, reason))
    sys.stdout.flush()


def test_expect_success(name, fn, *args, always=False):
    """
    Run one named case: fn(*args) passes unless it raises. TestFailure gives
    its message; any other exception its traceback. Either way the last HTTP
    response is printed. Skip(reason) reports a skip. Returns True on pass.
    """
    if not always and not _selected(name):
        test_skip(name, 'not selected by EHR_API_RUN')
        return False
    _Run.n += 1
    n = _Run.n
    _last.resp = None
    _last_global[0] = None
    t0 = time.monotonic()
    try:
        fn(*args)
    except Skip as e:
        _Run.skipped += 1
        print('skip %d - %s # %s' % (n, name, e))
        sys.stdout.flush()
        return False
    except Exception as e:
        _Run.failed.append((n, name))
        print('not ok %d - %s' % (n, name))
        if isinstance(e, TestFailure):
            msg = str(e)
        else:
            msg = ''.join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip()
        for line in msg.splitlines():
            print('#   ' + line)
        lr = last_response()
        if lr is not None:
            print('#   last response:')
            for line in lr.describe().splitlines():
                print('#     ' + line)
        for s in _servers:
            if s.proc is not None and s.proc.poll() is not None:
                print('#   server %s exited with status %s; its output:' % (s.name, s.proc.returncode))
                for line in s.log_text().splitlines()[-60:]:
                    print('#     ' + line)
        sys.stdout.flush()
        return False
    _Run.passed += 1
    dt = time.monotonic() - t0
    print('ok %d - %s%s' % (n, name, ' (%.1fs)' % dt if dt >= 2 else ''))
    sys.stdout.flush()
    return True


def _check_server_exit(s):
    """A server stopped with SIGTERM must exit cleanly, and no server may
    have printed a sanitizer report (ASan/UBSan builds in make test)."""
    problems = []
    for how, rc in s.exit_codes:
        if how == 'SIGTERM' and rc not in (0, -signal.SIGTERM):
            problems.append('stopped with SIGTERM, exited with status %r' % rc)
        if how.startswith('SIGTERM, then SIGKILL'):
            problems.append('did not exit within %gs of SIGTERM' % STOP_TIMEOUT)
        if how == 'had already exited':
            problems.append('had exited on its own with status %r' % rc)
    logs = s.all_logs()
    m = SANITIZER_PATTERNS.search(logs)
    if m:
        i = max(0, m.start() - 200)
        problems.append('sanitizer or crash report in its output:\n' + logs[i:i + 4000])
    if problems:
        raise TestFailure('server %s: %s' % (s.name, '\n'.join(problems)))


def test_done():
    """Stop every server (checking it exits cleanly), print the summary and
    exit 1 if any case failed."""
    servers = list(_servers)
    for s in servers:
        s.stop()
    if servers:
        test_expect_success('servers exit cleanly on SIGTERM with no sanitizer report',
                            lambda: [_check_server_exit(s) for s in servers], always=True)
    for s in servers:
        if KEEP:
            print('# kept %s' % s.tmpdir)
        s.cleanup()
    dt = time.monotonic() - _Run.start
    print('# %d passed, %d failed, %d skipped in %.1fs' % (_Run.passed, len(_Run.failed),
                                                        _Run.skipped, dt))
    if _Run.failed:
        print('# failed: ' + ', '.join('%d' % n for n, _ in _Run.failed))
    print('1..%d' % _Run.n)
    sys.stdout.flush()
    sys.exit(1 if _Run.failed else 0)
