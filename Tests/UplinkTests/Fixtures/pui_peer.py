"""An independent PUI v1 receiver for esgate's tests: Python stdlib http.server + ssl (client certificate
required), lxml for XSD validation and exclusive C14N, hashlib SM3. Written from the spec, not from esgate.

usage: pui_peer.py CERT KEY CA XSD RECEIVER_CODE FAIL_FIRST STATS_JSON
Prints its port on stdout, then serves until killed. After every request it rewrites STATS_JSON.
"""
import copy
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
NS = "urn:cn-esup:pui:1"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
schema = etree.XMLSchema(etree.parse(xsd))
lock = threading.Lock()
state = {"requests": 0, "injected": 0, "packages": {}, "receipts": {}, "faults": [], "resent": 0,
         "accepted": 0, "duplicates": 0, "records": {}, "bad_headers": 0}


def save():
    tmp = stats_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({k: v for k, v in state.items() if k not in ("receipts",)}, f)
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
            save()
        self.reply(500, fault(code, message))

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with lock:
            state["requests"] += 1
            if state["injected"] < fail_first:
                state["injected"] += 1
                save()
                self.reply(503, b"busy", [("Retry-After", "1")])
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
            for record in records:
                identity = "%s|%s" % (etree.QName(record).localname, record[0].text)
                rev = int(record.get("rev"))
                if state["records"].get(identity, 0) >= rev:
                    duplicates += 1
                else:
                    state["records"][identity] = rev
                    accepted += 1
            state["accepted"] += accepted
            state["duplicates"] += duplicates
            state["packages"][package_id] = digest
            now = datetime.now(timezone(timedelta(hours=8))).strftime("%Y-%m-%dT%H:%M:%S+08:00")
            receipt = envelope('<pui:SubmitPackageResponse xmlns:pui="%s"><pui:Receipt packageId="%s" receivedAt="%s" '
                               'accepted="%d" duplicates="%d"/></pui:SubmitPackageResponse>'
                               % (NS, package_id, now, accepted, duplicates))
            state["receipts"][package_id] = receipt
            save()
        self.reply(200, receipt)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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
