"""An independent PUI v1 receiver for esgate's tests: Python stdlib http.server + ssl (client certificate
required), lxml for XSD validation and exclusive C14N, hashlib SM3. Written from the spec, not from esgate.

usage: pui_peer.py CERT KEY CA XSD RECEIVER_CODE FAIL_FIRST STATS_JSON [fault options]
Prints its port on stdout, then serves until killed. After every request it rewrites STATS_JSON.

Fault options (drawn per SubmitPackage request from a seeded generator, so a run is reproducible):
  --seed N                 random seed (default 1)
  --fault-rate P           answer a retryable soap:Server fault E500, nothing stored
  --drop-rate P            close the connection without an answer, nothing stored
  --busy-rate P            answer 503 with Retry-After (also for FAIL_FIRST)
  --retry-after S          Retry-After seconds (default 1); an early resend of that package is counted
  --late-rate P            store the package, then answer only after --late-delay seconds (the client has
                           timed out: "unknown whether stored"; the resend must get the original receipt)
  --late-delay S           default 5
  --reject-every N         reject the records whose crc32(type|key) % N == 0 with --reject-code (per-record,
                           in the receipt; they are not stored)
  --reject-code CODE       default R201 (field ItemCode)
  --delay S                delay every answer
"""
import argparse
import copy
import random
import re
import time
import zlib
import hashlib
import http.server
import json
import os
import ssl
import sys
import threading
from datetime import datetime, timedelta, timezone

from lxml import etree

cert, key, ca, xsd, receiver_code, fail_first, stats_path = sys.argv[1:8]
fail_first = int(fail_first)
parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--fault-rate", type=float, default=0)
parser.add_argument("--drop-rate", type=float, default=0)
parser.add_argument("--busy-rate", type=float, default=0)
parser.add_argument("--retry-after", type=int, default=1)
parser.add_argument("--late-rate", type=float, default=0)
parser.add_argument("--late-delay", type=float, default=5)
parser.add_argument("--reject-every", type=int, default=0)
parser.add_argument("--reject-code", default="R201")
parser.add_argument("--delay", type=float, default=0)
options = parser.parse_args(sys.argv[8:])
rng = random.Random(options.seed)
PACKAGE_ID = re.compile(rb"<pui:PackageId>([^<]*)</pui:PackageId>")
NS = "urn:cn-esup:pui:1"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
schema = etree.XMLSchema(etree.parse(xsd))
lock = threading.Lock()
state = {"requests": 0, "injected": 0, "packages": {}, "receipts": {}, "faults": [], "resent": 0,
         "accepted": 0, "duplicates": 0, "records": {}, "bad_headers": 0,
         # fault injection: counts per kind, Retry-After violations, records rejected by code, (key|rev) accepted twice
         "injected_kinds": {"busy": 0, "fault": 0, "drop": 0, "late": 0}, "early_retries": 0, "rejected": {},
         "accepted_twice": [], "accepted_keys": {}, "fault_messages": [], "incomplete": 0}
busy_until = {}   # PackageId -> monotonic time before which a resend is too early (Retry-After)


def save():
    tmp = stats_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({k: v for k, v in state.items() if k not in ("receipts", "accepted_keys")}, f)
    os.replace(tmp, stats_path)


def envelope(payload):
    return ('<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="%s"><soap:Body>%s</soap:Body>'
            '</soap:Envelope>' % (SOAP, payload)).encode()


def fault(code, message):
    return envelope('<soap:Fault><faultcode>soap:Client</faultcode><faultstring>%s</faultstring><detail>'
                    '<pui:Error xmlns:pui="%s" code="%s" retryable="false">%s</pui:Error></detail></soap:Fault>'
                    % (message, NS, code, message))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, body, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def refuse(self, code, message):
        with lock:
            state["faults"].append(code)
            state["fault_messages"].append("%s %s" % (code, message[:300]))
            save()
        self.reply(500, fault(code, message))

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if len(body) < length:
            # The client went away mid-request (a gateway killed while sending, at a TLS record boundary, reads as
            # a clean end of stream): no package arrived, so there is nothing to refuse.
            with lock:
                state["incomplete"] += 1
                save()
            self.close_connection = True
            return
        if options.delay:
            time.sleep(options.delay)
        match = PACKAGE_ID.search(body)
        package_hint = match.group(1).decode() if match else ""
        late = False
        with lock:
            state["requests"] += 1
            now_mono = time.monotonic()
            if package_hint in busy_until and now_mono < busy_until[package_hint] - 0.05:
                state["early_retries"] += 1
            busy_until.pop(package_hint, None)
            draw = rng.random()
            kind = None
            if state["injected"] < fail_first:
                kind = "busy"
            elif draw < options.busy_rate:
                kind = "busy"
            elif draw < options.busy_rate + options.fault_rate:
                kind = "fault"
            elif draw < options.busy_rate + options.fault_rate + options.drop_rate:
                kind = "drop"
            elif draw < options.busy_rate + options.fault_rate + options.drop_rate + options.late_rate:
                late = True
            if kind is not None:
                state["injected"] += 1
                state["injected_kinds"][kind] += 1
                save()
            if kind == "busy":
                busy_until[package_hint] = now_mono + options.retry_after
                self.reply(503, b"busy", [("Retry-After", str(options.retry_after))])
                return
            if kind == "fault":
                self.reply(500, envelope('<soap:Fault><faultcode>soap:Server</faultcode><faultstring>down</faultstring>'
                                         '<detail><pui:Error xmlns:pui="%s" code="E500" retryable="true">injected'
                                         '</pui:Error></detail></soap:Fault>' % NS))
                return
            if kind == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass
                return
        if (self.headers.get("SOAPAction") != '"urn:cn-esup:pui:1#SubmitPackage"'
                or self.headers.get("Content-Type") != "text/xml; charset=utf-8"):
            with lock:
                state["bad_headers"] += 1
            return self.refuse("E100", "wrong SOAPAction or Content-Type")
        if len(body) > 8 * 1024 * 1024:
            return self.refuse("E104", "too large")
        try:
            parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)
            document = etree.fromstring(body, parser)
        except etree.XMLSyntaxError as error:
            return self.refuse("E100", "not well-formed: %s" % error)
        package = document.find("{%s}Body/{%s}SubmitPackage/{%s}Package" % (SOAP, NS, NS))
        if package is None:
            return self.refuse("E100", "no Package")
        if not schema.validate(etree.ElementTree(copy.deepcopy(package))):
            return self.refuse("E100", "invalid: %s" % schema.error_log.last_error)
        head = package.find("{%s}Head" % NS)
        pui_body = package.find("{%s}Body" % NS)
        text = lambda name: head.find("{%s}%s" % (NS, name)).text
        package_id, sender, receiver = text("PackageId"), text("Sender"), text("Receiver")
        peer = self.connection.getpeercert() or {}
        cn = next((v for rdn in peer.get("subject", ()) for (k, v) in rdn if k == "commonName"), None)
        if cn != sender:
            return self.refuse("E102", "sender %s does not match certificate CN %s" % (sender, cn))
        if receiver != receiver_code:
            return self.refuse("E105", "wrong receiver")
        canonical = etree.tostring(pui_body, method="c14n", exclusive=True, with_comments=False)
        digest = hashlib.new("sm3", canonical).hexdigest()
        if digest != text("Digest"):
            return self.refuse("E101", "digest mismatch")
        records = list(pui_body)
        if int(text("RecordCount")) != len(records):
            return self.refuse("E100", "RecordCount mismatch")
        with lock:
            known = state["packages"].get(package_id)
            if known is not None:
                if known != digest:
                    state["faults"].append("E103")
                    save()
                    self.reply(500, fault("E103", "PackageId reused with another body"))
                    return
                state["resent"] += 1
                save()
                self.reply(200, state["receipts"][package_id])
                return
            accepted = duplicates = 0
            rejections = []
            for index, record in enumerate(records, start=1):
                identity = "%s|%s" % (etree.QName(record).localname, record[0].text)
                rev = int(record.get("rev"))
                if options.reject_every and zlib.crc32(identity.encode()) % options.reject_every == 0:
                    state["rejected"]["%s|%d" % (identity, rev)] = options.reject_code
                    rejections.append('<pui:Rejected index="%d" code="%s" field="ItemCode">rejected (injected)</pui:Rejected>'
                                      % (index, options.reject_code))
                    continue
                if state["records"].get(identity, 0) >= rev:
                    duplicates += 1
                else:
                    state["records"][identity] = rev
                    accepted += 1
                    seen = "%s|%d" % (identity, rev)
                    if seen in state["accepted_keys"]:
                        state["accepted_twice"].append(seen)
                    state["accepted_keys"][seen] = 1
            state["accepted"] += accepted
            state["duplicates"] += duplicates
            state["packages"][package_id] = digest
            now = datetime.now(timezone(timedelta(hours=8))).strftime("%Y-%m-%dT%H:%M:%S+08:00")
            receipt = envelope('<pui:SubmitPackageResponse xmlns:pui="%s"><pui:Receipt packageId="%s" receivedAt="%s" '
                               'accepted="%d" duplicates="%d">%s</pui:Receipt></pui:SubmitPackageResponse>'
                               % (NS, package_id, now, accepted, duplicates, "".join(rejections)))
            state["receipts"][package_id] = receipt
            if late:
                state["injected"] += 1
                state["injected_kinds"]["late"] += 1
            save()
        if late:
            # Stored, but the answer comes after the client gave up; writing it may fail on a closed socket.
            time.sleep(options.late_delay)
            try:
                self.reply(200, receipt)
            except OSError:
                pass
            return
        self.reply(200, receipt)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A gateway killed or timed out mid-request (the tests do both on purpose) leaves the reply nowhere to
        # go; that is not the peer's failure, and its traceback only buries real ones in the test log.
        if isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            return
        super().handle_error(request, client_address)


server = Server(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.minimum_version = ssl.TLSVersion.TLSv1_2
context.load_cert_chain(cert, key)
context.load_verify_locations(ca)
context.verify_mode = ssl.CERT_REQUIRED
server.socket = context.wrap_socket(server.socket, server_side=True)
with lock:
    save()
print(server.server_address[1], flush=True)
server.serve_forever()
