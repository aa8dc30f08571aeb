#!/usr/bin/python3
"""s3_endpoint.py — a strict S3 PUT Object peer for tests/test_upload.c.

s3rver and similar fakes accept any signature, so they cannot tell a correct
SigV4 request from a wrong one.  This peer recomputes the signature of every
PUT with botocore's own signer (the reference implementation clients are
judged against), from what was actually received: method, path, exactly the
headers the client listed in SignedHeaders, its x-amz-date, and the body.
Only when the signature matches and x-amz-content-sha256 is the SHA-256 of
the body is the object stored, path style, as DIR/BUCKET/KEY; otherwise the
answer is 403 with an S3-style XML error, as AWS would send.

Usage: s3_endpoint.py DIR ACCESS_KEY SECRET_KEY REGION
Prints the port (bound to 127.0.0.1, port 0) on stdout once listening.
Runs until killed.  Run with Debian's /usr/bin/python3 (has botocore).
"""
import hashlib
import hmac
import os
import re
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH_RE = re.compile(
    r'^AWS4-HMAC-SHA256\s+Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request,\s*'
    r'SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$')


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'	# keep-alive, as a real endpoint

    def log_message(self, fmt, *args):
        sys.stderr.write('s3_endpoint: ' + (fmt % args) + '\n')

    def answer(self, status, code=None, message=''):
        body = b''
        if code:
            body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
                    '<Message>%s</Message></Error>\n' % (code, message)).encode()
        self.send_response(status)
        self.send_header('Content-Length', str(len(body)))
        if body:
            self.send_header('Content-Type', 'application/xml')
        self.end_headers()
        self.wfile.write(body)

    def check_signature(self, body):
        """None if the request is signed right, else (code, message)."""
        srv = self.server
        m = AUTH_RE.match(self.headers.get('Authorization', ''))
        if not m:
            return 'AccessDenied', 'missing or malformed Authorization'
        access, day, region, signed, signature = m.groups()
        if access != srv.creds.access_key:
            return 'InvalidAccessKeyId', 'unknown access key'
        if region != srv.region:
            return 'AuthorizationHeaderMalformed', 'wrong region ' + region
        amz_date = self.headers.get('x-amz-date', '')
        if not amz_date.startswith(day):
            return 'AccessDenied', 'x-amz-date does not match the credential scope'
        claimed = self.headers.get('x-amz-content-sha256')
        if claimed != hashlib.sha256(body).hexdigest():
            return 'XAmzContentSHA256Mismatch', 'x-amz-content-sha256 is not the body hash'
        names = signed.split(';')
        for required in ('host', 'x-amz-date', 'x-amz-content-sha256'):
            if required not in names:
                return 'AccessDenied', required + ' is not signed'
        headers = {}
        for n in names:
            if self.headers.get(n) is None:
                return 'AccessDenied', 'signed header %s not sent' % n
            headers[n] = self.headers.get(n)
        url = 'http://%s%s' % (self.headers['host'], self.path)
        req = AWSRequest(method=self.command, url=url, data=body, headers=headers)
        req.context['timestamp'] = amz_date	# the client's time, not ours
        auth = S3SigV4Auth(srv.creds, 's3', srv.region)
        expected = auth.signature(auth.string_to_sign(req, auth.canonical_request(req)), req)
        if not hmac.compare_digest(expected, signature):
            return ('SignatureDoesNotMatch', 'The request signature we calculated does '
                    'not match the signature you provided.')
        return None

    def do_PUT(self):
        length = self.headers.get('Content-Length')
        if length is None:
            return self.answer(411, 'MissingContentLength', 'Content-Length required')
        body = self.rfile.read(int(length))
        bad = self.check_signature(body)
        if bad:
            self.log_message('refused: %s: %s (Authorization: %s)', bad[0], bad[1],
                             self.headers.get('Authorization'))
            return self.answer(403, *bad)
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        parts = path.lstrip('/').split('/')
        if len(parts) < 2 or any(p in ('', '.', '..') for p in parts):
            return self.answer(400, 'InvalidObjectName', 'bad bucket or key')
        dest = os.path.join(self.server.root, *parts)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest + '.part', 'wb') as f:
            f.write(body)
        os.replace(dest + '.part', dest)
        self.answer(200)


def main():
    if len(sys.argv) != 5:
        sys.exit('usage: s3_endpoint.py DIR ACCESS_KEY SECRET_KEY REGION')
    root, access, secret, region = sys.argv[1:]
    srv = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    srv.daemon_threads = True
    srv.root, srv.region = root, region
    srv.creds = Credentials(access, secret)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == '__main__':
    main()
