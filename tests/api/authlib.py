"""
authlib.py - what the security tests share (Python 3 standard library, plus
the openssl command for signing client assertions): TOTP codes (RFC 6238),
a cookie-keeping browser for the sign-in pages, PKCE, JWTs signed with keys
made by openssl, and RS256 verification of id_tokens.
"""

import base64
import hashlib
import hmac
import html
import json
import os
import re
import struct
import subprocess
import tempfile
import time
import urllib.parse

from harness import Client, check, eq, expect_status


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))


# ---- TOTP (RFC 6238), computed here independently of the server

def totp(secret_b32, t=None, offset=0):
    key = base64.b32decode(secret_b32 + '=' * (-len(secret_b32) % 8))
    counter = int((time.time() if t is None else t) // 30) + offset
    mac = hmac.new(key, struct.pack('>Q', counter), hashlib.sha1).digest()
    o = mac[-1] & 15
    v = (struct.unpack('>I', mac[o:o + 4])[0] & 0x7fffffff) % 1000000
    return '%06d' % v


# ---- PKCE (RFC 7636)

def pkce():
    verifier = b64u(os.urandom(32))
    challenge = b64u(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge


# ---- a browser: a client that keeps the session cookie and never follows redirects

class Browser:
    def __init__(self, server):
        self.c = Client(server, token=None, accept='text/html')
        self.cookies = {}

    def request(self, method, path, form=None, json_body=None, headers=None, accept=None):
        h = dict(headers or {})
        if self.cookies:
            h['Cookie'] = '; '.join('%s=%s' % kv for kv in self.cookies.items())
        if accept:
            h['Accept'] = accept
        body = None
        ct = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            ct = 'application/x-www-form-urlencoded'
        if json_body is not None:
            body = json.dumps(json_body)
            ct = 'application/json'
            h.setdefault('Accept', 'application/json')
        r = self.c.request(method, path, body=body, headers=h, content_type=ct)
        for sc in r.header_all('Set-Cookie'):
            name, _, rest = sc.partition('=')
            value = rest.split(';')[0]
            if 'Max-Age=0' in sc or value == '':
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return r

    def get(self, path, **kw):
        return self.request('GET', path, **kw)

    def post(self, path, **kw):
        return self.request('POST', path, **kw)

    def login(self, username, password):
        r = self.post('/auth/login', json_body={'username': username, 'password': password})
        return r

    def close(self):
        self.c.close()


def hidden_inputs(page):
    text = page.decode('utf-8') if isinstance(page, bytes) else page
    return {html.unescape(m.group(1)): html.unescape(m.group(2))
            for m in re.finditer(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', text)}


def location_query(r):
    loc = r.header('Location') or ''
    return loc, dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))


# ---- keys and JWTs through the openssl command

class Key:
    """An RSA 2048 or EC P-384 key made by openssl, with its public JWK."""

    def __init__(self, kind='RSA', kid='k1'):
        self.kind = kind
        self.kid = kid
        self.dir = tempfile.mkdtemp(prefix='ehr-key-')
        self.pem = os.path.join(self.dir, 'key.pem')
        if kind == 'RSA':
            subprocess.run(['openssl', 'genrsa', '-out', self.pem, '2048'], check=True,
                           capture_output=True)
            out = subprocess.run(['openssl', 'rsa', '-in', self.pem, '-noout', '-modulus'],
                                 check=True, capture_output=True, text=True).stdout
            n = bytes.fromhex(out.strip().split('=', 1)[1])
            self.jwk = {'kty': 'RSA', 'n': b64u(n), 'e': 'AQAB', 'kid': kid, 'alg': 'RS384'}
        else:
            subprocess.run(['openssl', 'ecparam', '-name', 'secp384r1', '-genkey', '-noout',
                            '-out', self.pem], check=True, capture_output=True)
            der = subprocess.run(['openssl', 'ec', '-in', self.pem, '-pubout', '-outform', 'DER'],
                                 check=True, capture_output=True).stdout
            point = der[-97:]
            check(point[0] == 4, 'uncompressed EC point expected')
            self.jwk = {'kty': 'EC', 'crv': 'P-384', 'x': b64u(point[1:49]),
                        'y': b64u(point[49:97]), 'kid': kid, 'alg': 'ES384'}

    def jwks(self):
        return json.dumps({'keys': [self.jwk]})

    def sign(self, data, digest='sha384'):
        sig = subprocess.run(['openssl', 'dgst', '-' + digest, '-sign', self.pem], input=data,
                             check=True, capture_output=True).stdout
        if self.kind == 'RSA':
            return sig
        # DER ECDSA-Sig-Value -> r || s, 48 bytes each (RFC 7518 3.4)
        check(sig[0] == 0x30, 'DER signature expected')
        i = 2 if sig[1] < 0x80 else 3
        out = b''
        for _ in range(2):
            check(sig[i] == 2, 'DER integer expected')
            ln = sig[i + 1]
            v = sig[i + 2:i + 2 + ln].lstrip(b'\x00')
            out += v.rjust(48, b'\x00')
            i += 2 + ln
        return out

    def jwt(self, claims, alg=None, header=None):
        h = header or {'alg': alg or self.jwk['alg'], 'typ': 'JWT', 'kid': self.kid}
        signing = b64u(json.dumps(h)) + '.' + b64u(json.dumps(claims))
        digest = 'sha384' if h.get('alg', '').endswith('384') else 'sha256'
        return signing + '.' + b64u(self.sign(signing.encode(), digest))


def rs256_verify(jwt, jwk):
    """Verify an RS256 JWT with an RSA JWK, by the arithmetic of PKCS #1 v1.5."""
    h, p, s = jwt.split('.')
    n = int.from_bytes(b64u_dec(jwk['n']), 'big')
    e = int.from_bytes(b64u_dec(jwk['e']), 'big')
    k = (n.bit_length() + 7) // 8
    em = pow(int.from_bytes(b64u_dec(s), 'big'), e, n).to_bytes(k, 'big')
    digest = hashlib.sha256((h + '.' + p).encode()).digest()
    prefix = bytes.fromhex('3031300d060960864801650304020105000420')
    want = b'\x00\x01' + b'\xff' * (k - len(prefix) - len(digest) - 3) + b'\x00' + prefix + digest
    return hmac.compare_digest(em, want)


def jwt_claims(jwt):
    return json.loads(b64u_dec(jwt.split('.')[1]))


def bearer(server, token):
    return Client(server, token=token)
