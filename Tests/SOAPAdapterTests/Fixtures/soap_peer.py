#!/usr/bin/env python3
"""Legacy SOAP services for esgate's SOAP adapter tests, on 127.0.0.1, port 0 (the port is printed first).

Spyne 2.14 (pip install spyne lxml) serves the document/literal services:
  /doc       SOAP 1.1 document/literal wrapped: GetCases(page, pageSize), GetChanges(since, page, pageSize),
             GetCasesXml (escaped inner document declaring gb2312), GetCasesBase64 (base64 of GBK bytes
             declaring gb2312), GetEvilXml(kind) (escaped XXE / billion-laughs inner documents)
  /soap12    the same service in SOAP 1.2
  /secure    the same service, SOAP 1.1, requiring a WS-Security UsernameToken with PasswordDigest
             (verified here: Base64(SHA-1(nonce + created + password)), fresh Created, unused nonce)
Spyne has no rpc/literal binding, so these are plain http.server + lxml:
  /rpc       SOAP 1.1 rpc/literal GetCases (unqualified parts), requires an unquoted SOAPAction
  /raw/NAME  canned envelopes: xxe, laughs (DTD in the envelope), conflict-utf8 and conflict-gbk (the
             HTTP charset and the XML declaration disagree)
Control: GET /stats (JSON), GET /control?fault_page=N&times=K, GET /control?add=N (new changed records).
"""
import base64
import hashlib
import json
import sys
import threading
import datetime
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs
from wsgiref.simple_server import make_server, WSGIServer, WSGIRequestHandler

from lxml import etree
from spyne import Application, rpc, ServiceBase, Unicode, Integer, ComplexModel, Array, ByteArray, Fault
from spyne.protocol.soap import Soap11, Soap12
from spyne.server.wsgi import WsgiApplication

TNS = "urn:esgate:test"
RPC_NS = "urn:esgate:rpc"
USERNAME, PASSWORD = "esgate", "口令-Secret1"
NAMES = ["王芳", "李镕", "张伟", "刘洋", "陈静", "杨帆", "赵磊", "黄丽", "周杰", "吴敏"]

lock = threading.RLock()
stats = {"requests": [], "calls": [], "soapactions": [], "content_types": [], "auth_ok": 0, "auth_failed": []}
control = {"fault_page": None, "fault_times": 0}


def check18(first17):
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return first17 + "10X98765432"[sum(int(c) * w for c, w in zip(first17, weights)) % 11]


def make_case(n):
    minute = n // 2  # two records share each UpdatedAt: page boundaries split equal timestamps
    return {
        "CaseNo": "SOAP%06d" % n,
        "ItemCode": "XK0006",
        "ItemName": "税务登记证核发",
        "Applicant": NAMES[n % len(NAMES)],
        "IdNumber": check18("41010319800101%03d" % (n % 1000)),
        "AppliedAt": (datetime.datetime(2024, 3, 1, 9, 0) + datetime.timedelta(minutes=n)).strftime("%Y-%m-%d %H:%M:%S"),
        "UpdatedAt": (datetime.datetime(2024, 3, 1, 9, 0) + datetime.timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S"),
    }


cases = [make_case(n) for n in range(1, 101)]  # 20 pages of 5


def page_of(rows, page, size):
    page = max(page or 1, 1)
    size = size or 5
    return rows[(page - 1) * size: page * size]


def record_call(name, **params):
    with lock:
        stats["calls"].append({"op": name, **{k: v for k, v in params.items()}})


def maybe_fault(page):
    with lock:
        if control["fault_page"] is not None and page == control["fault_page"] and control["fault_times"] > 0:
            control["fault_times"] -= 1
            raise Fault(faultcode="Server.Busy", faultstring="数据库忙，请稍后再试 (ORA-00054: resource busy)")


def inner_xml(rows, encoding_label):
    body = "".join(
        "<Case><CaseNo>%s</CaseNo><ItemCode>%s</ItemCode><ItemName>%s</ItemName><Applicant>%s</Applicant>"
        "<IdNumber>%s</IdNumber><AppliedAt>%s</AppliedAt></Case>"
        % (r["CaseNo"], r["ItemCode"], r["ItemName"], r["Applicant"], r["IdNumber"], r["AppliedAt"]) for r in rows)
    return '<?xml version="1.0" encoding="%s"?>\n<Cases>%s</Cases>' % (encoding_label, body)


EVIL = {
    "xxe": '<?xml version="1.0" encoding="gb2312"?>\n<!DOCTYPE Cases [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           '<Cases><Case><CaseNo>&x;</CaseNo><ItemCode>XK0006</ItemCode><ItemName>&x;</ItemName>'
           '<Applicant>&x;</Applicant><IdNumber>410103198001010011</IdNumber><AppliedAt>2024-03-01 09:00:00</AppliedAt></Case></Cases>',
    "laughs": '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
              + "".join('<!ENTITY lol%d "%s">' % (i, ("&lol%d;" % (i - 1) if i > 1 else "&lol;") * 10) for i in range(1, 10))
              + ']><Cases><Case><CaseNo>&lol9;</CaseNo></Case></Cases>',
}


class Case(ComplexModel):
    __namespace__ = TNS
    CaseNo = Unicode
    ItemCode = Unicode
    ItemName = Unicode
    Applicant = Unicode
    IdNumber = Unicode
    AppliedAt = Unicode
    UpdatedAt = Unicode


class CaseService(ServiceBase):
    @rpc(Integer, Integer, _returns=Array(Case))
    def GetCases(ctx, page, pageSize):
        record_call("GetCases", page=page, pageSize=pageSize)
        maybe_fault(page)
        return [Case(**r) for r in page_of(cases, page, pageSize)]

    @rpc(Unicode, Integer, Integer, _returns=Array(Case))
    def GetChanges(ctx, since, page, pageSize):
        record_call("GetChanges", since=since, page=page, pageSize=pageSize)
        with lock:
            changed = sorted((r for r in cases if r["UpdatedAt"] >= (since or "")), key=lambda r: (r["UpdatedAt"], r["CaseNo"]))
        return [Case(**r) for r in page_of(changed, page, pageSize)]

    @rpc(Integer, Integer, _returns=Unicode)
    def GetCasesXml(ctx, page, pageSize):
        record_call("GetCasesXml", page=page, pageSize=pageSize)
        rows = page_of(cases, page, pageSize)
        return inner_xml(rows, "gb2312") if rows else ""

    @rpc(Integer, Integer, _returns=ByteArray)
    def GetCasesBase64(ctx, page, pageSize):
        record_call("GetCasesBase64", page=page, pageSize=pageSize)
        # GBK bytes under a gb2312 label (李镕: 镕 is GBK, not GB2312): the usual leftover of such servers.
        return [inner_xml(page_of(cases, page, pageSize), "gb2312").encode("gbk")]

    @rpc(Unicode, _returns=Unicode)
    def GetEvilXml(ctx, kind):
        record_call("GetEvilXml", kind=kind)
        return EVIL[kind]


def verify_username_token(ctx):
    """WS-Security UsernameToken Profile 1.0 §3.1: PasswordDigest = Base64(SHA-1(nonce + created + password))."""
    ns = {"wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
          "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"}
    envelope = ctx.in_document
    token = envelope.find(".//wsse:UsernameToken", ns) if envelope is not None else None

    def fail(reason):
        with lock:
            stats["auth_failed"].append(reason)
        raise Fault(faultcode="Client.Authentication", faultstring="WS-Security: " + reason)

    if token is None:
        fail("no UsernameToken")
    username = token.findtext("wsse:Username", namespaces=ns)
    password = token.find("wsse:Password", ns)
    nonce = token.findtext("wsse:Nonce", namespaces=ns)
    created = token.findtext("wsu:Created", namespaces=ns)
    if username != USERNAME or password is None or not nonce or not created:
        fail("incomplete token or unknown user")
    if not password.get("Type", "").endswith("#PasswordDigest"):
        fail("PasswordDigest required")
    expected = base64.b64encode(hashlib.sha1(base64.b64decode(nonce) + created.encode() + PASSWORD.encode()).digest()).decode()
    if password.text != expected:
        fail("digest mismatch")
    when = datetime.datetime.strptime(created.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 300:
        fail("Created is stale")
    with lock:
        if nonce in stats.setdefault("nonces", []):
            fail("nonce replayed")
        stats["nonces"].append(nonce)
        stats["auth_ok"] += 1


def spyne_app(in_protocol, out_protocol, secure=False):
    app = Application([CaseService], tns=TNS, in_protocol=in_protocol, out_protocol=out_protocol)
    if secure:
        app.event_manager.add_listener("method_call", verify_username_token)
    return WsgiApplication(app)


doc_app = spyne_app(Soap11(validator="lxml"), Soap11())
soap12_app = spyne_app(Soap12(validator="lxml"), Soap12())
secure_app = spyne_app(Soap11(validator="lxml"), Soap11(), secure=True)


def envelope11(body):
    return ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
            "<soap:Body>%s</soap:Body></soap:Envelope>" % body)


def rpc_fault(start_response, code, text):
    body = envelope11("<soap:Fault><faultcode>soap:%s</faultcode><faultstring>%s</faultstring></soap:Fault>" % (code, text))
    start_response("500 Internal Server Error", [("Content-Type", "text/xml; charset=utf-8")])
    return [body.encode()]


def rpc_app(environ, start_response):
    """rpc/literal as Axis 1 wrote it: operation element in the service namespace, unqualified parts."""
    action = environ.get("HTTP_SOAPACTION")
    if action != RPC_NS + "#GetCases":
        return rpc_fault(start_response, "Client", "SOAPAction must be unquoted %s#GetCases, got %r" % (RPC_NS, action))
    length = int(environ.get("CONTENT_LENGTH") or 0)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    request = etree.fromstring(environ["wsgi.input"].read(length), parser)
    operation = request.find("{http://schemas.xmlsoap.org/soap/envelope/}Body/{%s}GetCases" % RPC_NS)
    if operation is None or operation.find("page") is None or operation.find("pageSize") is None:
        return rpc_fault(start_response, "Client", "expected rpc/literal {%s}GetCases with unqualified page and pageSize" % RPC_NS)
    page, size = int(operation.findtext("page")), int(operation.findtext("pageSize"))
    record_call("rpc:GetCases", page=page, pageSize=size)
    items = "".join(
        "<item><CaseNo>%s</CaseNo><ItemCode>%s</ItemCode><ItemName>%s</ItemName><Applicant>%s</Applicant>"
        "<IdNumber>%s</IdNumber><AppliedAt>%s</AppliedAt></item>"
        % (r["CaseNo"], r["ItemCode"], r["ItemName"], r["Applicant"], r["IdNumber"], r["AppliedAt"])
        for r in page_of(cases, page, size))
    body = envelope11('<ns1:GetCasesResponse xmlns:ns1="%s"><return>%s</return></ns1:GetCasesResponse>' % (RPC_NS, items))
    start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8")])
    return [body.encode("utf-8")]


def raw_app(name, start_response):
    rows = page_of(cases, 1, 5)
    items = inner_xml(rows, "x").split("<Cases>", 1)[1].rsplit("</Cases>", 1)[0]
    if name == "xxe":
        text = ('<?xml version="1.0"?><!DOCTYPE soap:Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><Cases>'
                '<Case><CaseNo>&x;</CaseNo><Applicant>&x;</Applicant><ItemName>x</ItemName></Case></Cases></soap:Body></soap:Envelope>')
        payload, ctype = text.encode(), "text/xml; charset=utf-8"
    elif name == "laughs":
        text = EVIL["laughs"].replace("<Cases>", '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><Cases>') \
            .replace("</Cases>", "</Cases></soap:Body></soap:Envelope>").replace("<!DOCTYPE lolz", "<!DOCTYPE soap:Envelope")
        payload, ctype = text.encode(), "text/xml; charset=utf-8"
    elif name == "conflict-utf8":  # .NET style: UTF-8 bytes and header, a gb2312 declaration left over
        text = '<?xml version="1.0" encoding="gb2312"?>' + envelope11("<Cases>%s</Cases>" % items).split("?>", 1)[1]
        payload, ctype = text.encode("utf-8"), "text/xml; charset=utf-8"
    elif name == "conflict-gbk":  # GBK bytes and declaration, a wrong utf-8 header from the container
        text = '<?xml version="1.0" encoding="gbk"?>' + envelope11("<Cases>%s</Cases>" % items).split("?>", 1)[1]
        payload, ctype = text.encode("gbk"), "text/xml; charset=utf-8"
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such canned response"]
    start_response("200 OK", [("Content-Type", ctype)])
    return [payload]


def dispatch(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if environ["REQUEST_METHOD"] == "POST":
        with lock:
            stats["requests"].append(path)
            stats["soapactions"].append(environ.get("HTTP_SOAPACTION"))
            stats["content_types"].append(environ.get("CONTENT_TYPE"))
    if path == "/stats":
        with lock:
            body = json.dumps(stats, ensure_ascii=False).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/control":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        with lock:
            if "fault_page" in query:
                control["fault_page"] = int(query["fault_page"][0])
                control["fault_times"] = int(query.get("times", ["1"])[0])
            if "add" in query:
                start = len(cases) + 1
                for n in range(start, start + int(query["add"][0])):
                    case = make_case(n)
                    case["UpdatedAt"] = "2024-03-02T08:%02d:00" % (n % 60)
                    cases.append(case)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    if path.startswith("/doc"):
        return doc_app(environ, start_response)
    if path.startswith("/soap12"):
        return soap12_app(environ, start_response)
    if path.startswith("/secure"):
        return secure_app(environ, start_response)
    if path.startswith("/rpc"):
        return rpc_app(environ, start_response)
    if path.startswith("/raw/"):
        return raw_app(path[len("/raw/"):], start_response)
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, dispatch, server_class=ThreadingServer, handler_class=QuietHandler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
