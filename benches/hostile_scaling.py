#!/usr/bin/env python3
"""Hostile-input scaling check for the core (`trackless inspect`).

For each shape, messages are generated at sizes n, 2n, 4n and 8n, each is run through
`target/release/trackless --no-log inspect` with a time-out, and a table is printed: shape,
n, bytes, seconds, the growth factor per doubling, and what the run reported (skipped parts
with their reasons, or the exit status). A linear shape grows ~2x per doubling; ~4x is a
quadratic loop. A shape stops growing once a run takes longer than --stop seconds.

    python3 benches/hostile_scaling.py                       # every shape (~10 minutes)
    python3 benches/hostile_scaling.py -k style -k plain     # shapes whose name has a word
    python3 benches/hostile_scaling.py --list
    python3 benches/hostile_scaling.py --write nest-div 1000 /tmp/nest.eml   # one message

Python 3 standard library only. Messages stay at or under 64 MiB (the core's size limit);
a size that would be larger is left out. A run that dies (a stack overflow aborts the process)
shows its exit status; style-nested-media is kept at depths that do not overflow an 8 MiB
stack (16 000 levels already overflow a 2 MiB one: `ulimit -s 2048` before a run).
"""

import argparse
import base64
import binascii
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "trackless")
LIMIT = 64 << 20
CRLF = b"\r\n"

# --------------------------------------------------------------------------------------------
# Message builders


def message(body, ctype=b"text/html; charset=utf-8", cte=None, headers=b""):
    """A message with CRLF headers around `body` (already encoded)."""
    h = [
        b"From: Shop <news@shop.example>",
        b"To: jane@example.net",
        b"Subject: scaling test",
        b"Date: Mon, 2 Nov 2026 10:00:00 +0000",
        b"Message-ID: <scaling@shop.example>",
        b"MIME-Version: 1.0",
        b"Content-Type: " + ctype,
    ]
    if cte:
        h.append(b"Content-Transfer-Encoding: " + cte)
    return CRLF.join(h) + CRLF + headers + CRLF + body


def html(doc):
    return message(b"<html><body>\r\n" + doc + b"\r\n</body></html>\r\n")


def html_head(head, doc=b"<p>x</p>"):
    return message(b"<html><head>" + head + b"</head><body>\r\n" + doc + b"\r\n</body></html>\r\n")


def plain(text):
    return message(text + CRLF, ctype=b"text/plain; charset=utf-8")


def lines(blob, width=900):
    """Break a long run of HTML into CRLF lines (at most `width` bytes) where a tag starts,
    so that identity-encoded parts keep SMTP line lengths (the rewrite re-encodes as QP
    otherwise)."""
    return blob.replace(b"><", b">\r\n<") if width else blob


def qp(data):
    """Quoted-printable with CRLF line endings."""
    return binascii.b2a_qp(data).replace(b"\n", CRLF)


def b64(data):
    enc = base64.b64encode(data)
    return CRLF.join(enc[i:i + 76] for i in range(0, len(enc), 76)) + CRLF


def nums(n):
    return (str(i).encode() for i in range(n))


# Tracker URLs of the kinds the built-in rules know.
SG_CLICK = b"https://u1234.ct.sendgrid.net/ls/click?upn=u001.Abc%d-2BdEf3Gh4Ij5Kl6Mn7"
SG_OPEN = b"https://u1234.ct.sendgrid.net/wf/open?upn=u001.Qx%dZz9Yy8Xx7Ww6Vv5"
MC_CLICK = b"https://shop.us1.list-manage.com/track/click?u=0a1b2c3d4e5f6a7b8c9d0e1f2&id=%d&e=9f8e7d6c5b"
SES_CLICK = b"https://r.eu-west-1.awstrack.me/L0/https:%%2F%%2Fa.example%%2Fp%d/1/0102018f-abc/y=1"


def ses_chain(dest, depth):
    """`dest` wrapped `depth` times in SES's /L0/ redirector (each level percent-encodes)."""
    url = dest
    for i in range(depth):
        enc = url.replace(b"%", b"%25").replace(b"/", b"%2F")
        url = b"https://r%d.r.eu-west-1.awstrack.me/L0/" % i + enc + b"/1/0102018f-x/sig=%d" % i
    return url


def stylesheet_256k():
    rules = []
    size = 0
    i = 0
    while size < (250 << 10):
        r = b".k%d{color:red}" % i
        rules.append(r)
        size += len(r)
        i += 1
    return b"".join(rules)


def multipart(parts, subtype=b"mixed", boundary=b"b0undary"):
    out = [b"This is a multi-part message.\r\n"]
    for p in parts:
        out.append(b"--" + boundary + CRLF + p + CRLF)
    out.append(b"--" + boundary + b"--" + CRLF)
    return message(b"".join(out), ctype=b"multipart/" + subtype + b'; boundary="' + boundary + b'"')


def part(body, ctype=b"text/html; charset=utf-8", cte=None):
    h = b"Content-Type: " + ctype + CRLF
    if cte:
        h += b"Content-Transfer-Encoding: " + cte + CRLF
    return h + CRLF + body


# --------------------------------------------------------------------------------------------
# Shapes: name -> (n0, generator(n) -> message bytes, what n counts)

SHAPES = []


def shape(name, n0, unit):
    def register(fn):
        SHAPES.append((name, n0, fn, unit))
        return fn

    return register


def nest(open_tag, close_tag, inner=b"x"):
    return lambda n: html(open_tag * n + inner + close_tag * n)


# Deep nesting, closed properly.
for name, o, c in [
    ("nest-div", b"<div>", b"</div>"),
    ("nest-div-hidden", b"<div hidden>", b"</div>"),
    ("nest-div-style-none", b'<div style="display:none">', b"</div>"),
    ("nest-div-class-hidden", b'<div class="c" hidden>', b"</div>"),
    ("nest-span-style-url", b'<span style="background:url(https://cdn.example/a.png)">', b"</span>"),
    ("nest-table", b"<table><tr><td>", b"</td></tr></table>"),
    ("nest-a", b'<a href="https://shop.example/p">', b"</a>"),
    ("nest-a-tracked", b'<a href="' + SG_CLICK % 1 + b'">', b"</a>"),
    ("nest-li", b"<ul><li>", b"</li></ul>"),
    ("nest-p", b"<p>", b"</p>"),
    ("nest-font", b'<font color="red">', b"</font>"),
    ("nest-svg", b"<svg><g>", b"</g></svg>"),
    ("nest-template", b"<template>", b"</template>"),
    ("nest-select", b"<select><option>", b"</option></select>"),
]:
    shape(name, 16000, "depth")(nest(o, c))

shape("nest-div-hidden-imgs", 16000, "depth")(
    lambda n: html(b"<div hidden>" * n + b'<img src="https://cdn.example/a.png">' * n + b"</div>" * n))


# Unclosed elements and stray end tags: lol_html keeps every unclosed element on its stack.
@shape("unclosed-b-then-stray-end", 16000, "tags")
def _(n):
    return html(b"<b>" * n + b"</i>" * n)


@shape("unclosed-p-stray-end-mixed", 16000, "tags")
def _(n):
    return html(b"<p>x</i>\r\n" * n)


@shape("unclosed-td-only", 16000, "tags")
def _(n):
    return html(b"<td>x\r\n" * n)


@shape("void-and-stray-end-only", 64000, "tags")
def _(n):
    return html(b"<br></i>\r\n" * n)


# Attributes.
@shape("many-attrs-img", 100000, "attributes")
def _(n):
    attrs = b" ".join(b'a%d="1"' % i for i in range(n))
    return html(b'<img src="https://cdn.example/a.png" ' + attrs + b">")


@shape("many-attrs-div-style", 100000, "attributes")
def _(n):
    attrs = b" ".join(b'a%d="1"' % i for i in range(n))
    return html(b'<div style="color:red" ' + attrs + b">x</div>")


@shape("style-attr-decls", 100000, "declarations")
def _(n):
    return html(b'<div style="' + b"color:red;" * n + b'">x</div>')


@shape("style-attr-decls-url", 25000, "declarations")
def _(n):
    return html(b'<div style="' + b"background:url(https://cdn.example/a.png);" * n + b'">x</div>')


@shape("img-style-decls", 100000, "declarations")
def _(n):
    return html(b'<img src="https://cdn.example/a.png" style="' + b"width:1px;" * n + b'">')


@shape("srcset-candidates", 25000, "candidates")
def _(n):
    c = b", ".join(b"https://cdn.example/%d.png %dw" % (i, i + 1) for i in range(n))
    return html(b'<img src="https://cdn.example/a.png" srcset="' + c + b'">')


@shape("srcset-beacons-then-plain", 12500, "candidates/2")
def _(n):
    beacons = [SG_OPEN % i + b" 1x" for i in range(n)]
    kept = [b"https://cdn.example/%d.png 2x" % i for i in range(n)]
    return html(b'<img src="https://cdn.example/a.png" srcset="' + b", ".join(beacons + kept) + b'">')


@shape("href-long", 1250000, "bytes of URL")
def _(n):
    return html(b'<a href="https://shop.example/' + b"a" * n + b'">x</a>')


@shape("href-long-tracked", 1250000, "bytes of URL")
def _(n):
    return html(b'<a href="https://u1.ct.sendgrid.net/ls/click?upn=' + b"a" * n + b'">x</a>')


@shape("href-long-ses-chain-8", 1250000, "bytes of URL")
def _(n):
    return html(b'<a href="' + ses_chain(b"https://a.example/" + b"a" * n + b"?utm_source=x", 8) + b'">x</a>')


@shape("plain-long-ses-chain-8", 1250000, "bytes of URL")
def _(n):
    return plain(b"see " + ses_chain(b"https://a.example/" + b"a" * n + b"?utm_source=x", 8) + b" now")


@shape("href-amp-entities", 125000, "&amp;")
def _(n):
    return html(b'<a href="https://shop.example/p?' + b"x=1&amp;" * n + b'utm_source=a">x</a>')


@shape("href-many-params", 100000, "parameters")
def _(n):
    q = b"&".join(b"utm_k%d=1&k%d=2" % (i, i) for i in range(n))
    return html(b'<a href="https://shop.example/p?' + q + b'">x</a>')


# <style> blocks.
@shape("style-rules", 200000, "rules")
def _(n):
    return html_head(b"<style>" + b".c{color:red}\r\n" * n + b"</style>")


@shape("style-urls", 100000, "url()")
def _(n):
    return html_head(b"<style>" + b".c{background:url(https://cdn.example/a.png)}\r\n" * n + b"</style>")


@shape("style-beacon-urls", 50000, "url()")
def _(n):
    body = b"".join(b".c%d{background:url(%s)}\r\n" % (i, SG_OPEN % i) for i in range(n))
    return html_head(b"<style>" + body + b"</style>")


@shape("style-imports", 100000, "@import")
def _(n):
    return html_head(b"<style>" + b"@import url(https://fonts.googleapis.com/css?family=A);\r\n" * n + b"</style>")


@shape("style-nested-media", 1000, "depth")
def _(n):
    return html_head(b"<style>" + b"@media screen{" * n + b".c{color:red}" + b"}" * n + b"</style>")


@shape("style-unclosed-braces", 500000, "braces")
def _(n):
    return html_head(b"<style>" + b"a{" * n + b"</style>")


@shape("style-unclosed-parens", 500000, "parens")
def _(n):
    return html_head(b"<style>.c{b:" + b"x(" * n + b"}</style>")


@shape("style-many-blocks", 50000, "<style>")
def _(n):
    return html_head(b"<style>.c{color:red}</style>\r\n" * n)


@shape("imgs-classes-256k-sheet", 5000, "images")
def _(n):
    classes = b" ".join(b"k%d" % i for i in range(0, 40000, 2000))  # 20 classes named there
    imgs = b"".join(b'<img src="https://cdn.example/%d.png" class="%s" width="1" height="1">\r\n' % (i, classes)
                    for i in range(n))
    return html_head(b"<style>" + stylesheet_256k() + b"</style>", imgs)


@shape("img-many-classes-256k-sheet", 25000, "classes")
def _(n):
    sheet = b"a{color:red}" * ((250 << 10) // 12 + 1)
    sheet = sheet[: 250 << 10]
    return html_head(b"<style>" + sheet + b"</style>",
                     b'<img src="https://cdn.example/1.png" width="1" height="1" class="' + b"a " * n + b'">')


@shape("imgs-class-a-256k-sheet", 2000, "images")
def _(n):
    sheet = (b"a{color:red}" * ((250 << 10) // 12 + 1))[: 250 << 10]
    imgs = b'<img src="https://cdn.example/1.png" width="1" height="1" class="a">\r\n' * n
    return html_head(b"<style>" + sheet + b"</style>", imgs)


# Links.
@shape("links-same-tracked", 100000, "links")
def _(n):
    return html(b'<a href="' + SG_CLICK % 1 + b'">x</a>\r\n' * n)


@shape("links-sendgrid-distinct", 50000, "links")
def _(n):
    return html(b"".join(b'<a href="' + SG_CLICK % i + b'">x</a>\r\n' for i in range(n)))


@shape("links-mailchimp-distinct", 50000, "links")
def _(n):
    return html(b"".join(b'<a href="' + MC_CLICK % i + b'">x</a>\r\n' for i in range(n)))


@shape("links-ses-distinct", 50000, "links")
def _(n):
    return html(b"".join(b'<a href="' + SES_CLICK % i + b'">x</a>\r\n' for i in range(n)))


@shape("links-ses-chain-8", 4000, "links")
def _(n):
    return html(b"".join(b'<a href="' + ses_chain(b"https://a.example/p%d" % i, 8) + b'">x</a>\r\n'
                         for i in range(n)))


@shape("links-ses-chain-12", 2000, "links")
def _(n):
    return html(b"".join(b'<a href="' + ses_chain(b"https://a.example/p%d" % i, 12) + b'">x</a>\r\n'
                         for i in range(n)))


@shape("links-utm-distinct", 50000, "links")
def _(n):
    return html(b"".join(b'<a href="https://shop.example/p%d?utm_source=news&amp;id=1">x</a>\r\n' % i
                         for i in range(n)))


# text/plain.
@shape("plain-urls", 250000, "URLs")
def _(n):
    return plain(b"".join(b"see https://shop.example/p%d now\r\n" % i for i in range(n)))


@shape("plain-tracked-urls", 100000, "URLs")
def _(n):
    return plain(b"".join(b"see " + SG_CLICK % i + b" now\r\n" for i in range(n)))


@shape("plain-one-long-url", 1250000, "bytes of URL")
def _(n):
    return plain(b"https://shop.example/" + b"a" * n + b"?utm_source=x")


@shape("plain-angle-unclosed", 20000, "'<http://'")
def _(n):
    return plain(b"<http://a.example/x \r\n" * n)


@shape("plain-trailing-parens", 20000, "')'")
def _(n):
    return plain(b"see https://a.example/x" + b")" * n + b" ok")


# MIME structure.
@shape("mime-parts", 1200, "parts")
def _(n):
    return multipart([part(b'<p><a href="' + SG_CLICK % i + b'">x</a></p>') for i in range(n)])


@shape("mime-parts-plain-links", 1200, "parts")
def _(n):
    return multipart([part(b"see https://shop.example/p?utm_source=a&i=%d\r\n" % i,
                           ctype=b"text/plain; charset=utf-8") for i in range(n)])


@shape("mime-nested-multipart", 4, "depth")
def _(n):
    body = part(b"<p>x</p>")
    for i in range(n):
        b = b"b%d" % i
        body = (b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n--' + b + CRLF + body + CRLF
                + b"--" + b + b"--\r\n")
    return message(body.split(CRLF + CRLF, 1)[1], ctype=body.split(CRLF, 1)[0][len(b"Content-Type: "):])


@shape("mime-nested-rfc822", 4, "depth")
def _(n):
    inner = part(b"<p>" + b"x" * 100000 + b"</p>")
    for i in range(n):
        inner = b"Content-Type: message/rfc822\r\n\r\nSubject: level %d\r\n" % i + inner
    return message(inner.split(CRLF + CRLF, 1)[1], ctype=b"message/rfc822")


@shape("mime-nested-rfc822-b64", 2, "depth")
def _(n):
    inner = b"Subject: in\r\nContent-Type: text/html\r\n\r\n<p>" + b"x" * 100000 + b"</p>\r\n"
    for i in range(n):
        inner = (b"Subject: level %d\r\nContent-Type: message/rfc822\r\n"
                 b"Content-Transfer-Encoding: base64\r\n\r\n" % i + b64(inner))
    head, body = inner.split(CRLF + CRLF, 1)
    return message(body, ctype=b"message/rfc822", cte=b"base64")


# Header fields.
@shape("header-long-subject", 1250000, "bytes")
def _(n):
    return message(b"<p>x</p>", headers=b"X-Long: " + b"a" * n + CRLF)


@shape("header-long-folded", 100000, "lines")
def _(n):
    return message(b"<p>x</p>", headers=b"X-Long: a" + b"\r\n b" * n + CRLF)


@shape("headers-received", 12500, "fields")
def _(n):
    h = b"".join(b"Received: from mx%d.example.net (mx%d.example.net [192.0.2.1]) by mx.example.net "
                 b"with ESMTP id %d; Mon, 2 Nov 2026 10:00:00 +0000\r\n" % (i, i, i) for i in range(n))
    return message(b"<p>x</p>", headers=h)


@shape("headers-received-esp", 12500, "fields")
def _(n):
    h = b"".join(b"Received: from o%d.email.sendgrid.net (o%d.email.sendgrid.net [167.89.1.2]) by "
                 b"mx.example.net with ESMTP id %d; Mon, 2 Nov 2026 10:00:00 +0000\r\n" % (i, i, i)
                 for i in range(n))
    return message(b"<p>x</p>", headers=h)


@shape("headers-dkim-esp", 12500, "fields")
def _(n):
    h = b"".join(b"DKIM-Signature: v=1; a=rsa-sha256; d=sendgrid.info; s=s%d; b=x\r\n" % i for i in range(n))
    return message(b"<p>x</p>", headers=h)


@shape("headers-esp-named", 12500, "fields")
def _(n):
    h = b"".join(b"X-SG-EID: %d\r\nX-Mailgun-Sid: %d\r\n" % (i, i) for i in range(n))
    return message(b"<p>x</p>", headers=h)


@shape("content-type-params", 25000, "parameters")
def _(n):
    p = b"".join(b';\r\n p%d="v"' % i for i in range(n))
    return message(b"<p>x</p>", ctype=b"text/html; charset=utf-8" + p)


@shape("content-type-rfc2231", 12500, "parameters")
def _(n):
    p = b"".join(b";\r\n p%d=a; p%d*0=b" % (i, i) for i in range(n))
    return message(b"<p>x</p>", ctype=b"text/html; charset=utf-8" + p)


# Transfer encodings.
@shape("qp-one-long-line", 1000000, "bytes decoded/8")
def _(n):
    doc = b"<p style=3D=22color:red=22>x</p>" * (n * 8 // 32)
    return message(doc + CRLF, cte=b"quoted-printable")


@shape("qp-soft-breaks-only", 1000000, "bytes decoded")
def _(n):
    doc = b'<p class="t">hello world</p>' * (n // 28)
    enc = binascii.b2a_qp(doc)  # no newline in the decoded text: soft breaks only
    return message(enc.replace(b"\n", CRLF) + CRLF, cte=b"quoted-printable")


@shape("qp-soft-breaks-only-imgs", 500000, "bytes decoded")
def _(n):
    doc = b'<img src="https://cdn.example/p.gif" width="1" height="1">' * (n // 56)
    enc = binascii.b2a_qp(doc)
    return message(enc.replace(b"\n", CRLF) + CRLF, cte=b"quoted-printable")


@shape("qp-soft-breaks-only-links", 500000, "bytes decoded")
def _(n):
    one = b'<a href="https://shop.example/p?utm_source=a">x</a>'
    doc = one * (n // len(one))
    enc = binascii.b2a_qp(doc)
    return message(enc.replace(b"\n", CRLF) + CRLF, cte=b"quoted-printable")


@shape("b64-whitespace-everywhere", 1000000, "bytes decoded")
def _(n):
    doc = b"<p>hello world</p>\r\n" * (n // 20)
    enc = base64.b64encode(doc)
    spaced = bytearray(2 * len(enc))  # a space after every base64 character
    spaced[0::2] = enc
    spaced[1::2] = b" " * len(enc)
    return message(bytes(spaced) + CRLF, cte=b"base64")


@shape("b64-html-links", 1000000, "bytes decoded")
def _(n):
    one = b'<a href="' + SG_CLICK % 7 + b'">x</a>\r\n'
    return message(b64(one * (n // len(one))), cte=b"base64")


# Markup oddities.
@shape("comments", 250000, "comments")
def _(n):
    return html(b"<!--x-->" * n)


@shape("comment-unclosed", 2000000, "bytes")
def _(n):
    return html(b"<!--" + b"x" * n)


@shape("cdata-in-svg", 2000000, "bytes")
def _(n):
    return html(b"<svg><![CDATA[" + b"x" * n + b"]]></svg>")


@shape("tag-unclosed-attrs", 500000, "attributes")
def _(n):
    return html(b"<a " + b"b " * n)


@shape("lt-only", 2000000, "'<'")
def _(n):
    return html(b"<" * n)


@shape("end-tag-open-only", 1000000, "'</'")
def _(n):
    return html(b"</" * n)


@shape("bang-only", 1000000, "'<!'")
def _(n):
    return html(b"<!" * n)


@shape("text-entities", 1000000, "&amp;")
def _(n):
    return html(b"<p>" + b"&amp;" * n + b"</p>")


@shape("pixels-distinct", 50000, "images")
def _(n):
    return html(b"".join(b'<img src="https://t.example/o/%d.gif" width="1" height="1">\r\n' % i for i in range(n)))


@shape("pixels-same-src", 100000, "images")
def _(n):
    return html(b'<img src="https://t.example/o/spacer.gif" width="1" height="1">\r\n' * n)


@shape("backgrounds-distinct", 50000, "cells")
def _(n):
    return html(b"<table><tr>" + b"".join(b'<td background="https://cdn%d.example/b.png">x</td>' % i
                                           for i in range(n)) + b"</tr></table>")


@shape("link-stylesheets", 50000, "<link>")
def _(n):
    return html_head(b"".join(b'<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=F%d">\r\n' % i
                              for i in range(n)))


# --------------------------------------------------------------------------------------------
# Runner


def run_one(path, timeout):
    """Seconds, exit status (None on time-out) and a note from the report."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.Popen([BIN, "--no-log", "inspect", path], stdout=out, stderr=err)
        # A timer kills the run at the time-out: wait() then blocks without polling, so short
        # runs are timed to the millisecond (subprocess.run's time-out polls every 50 ms).
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        rc = p.wait()
        timer.cancel()
        dt = time.monotonic() - t0
        if dt >= timeout:
            return dt, None, "TIMEOUT"
        out.seek(0)
        skips = set()
        summary = ""
        for line in out:
            s = line.decode("utf-8", "replace").strip()
            if s.startswith("- skip"):
                m = re.search(r"skipped\s+(\S+)", s)
                skips.add(m.group(1) if m else s[:40])
            elif (s.startswith("REWRITE") or s.startswith("unchanged")) and not summary:
                summary = s.split(":")[0]
        note = summary
        if skips:
            note += " skipped=" + ",".join(sorted(skips))
        if rc != 0:
            err.seek(0)
            first = err.read(300).decode("utf-8", "replace").strip().splitlines()
            note += " rc=%d %s" % (rc, first[-1] if first else "")
        return dt, rc, note.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", action="append", default=[], help="run shapes whose name contains this")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--steps", type=int, default=4, help="sizes n, 2n, ... (default 4)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every shape's n by this")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--stop", type=float, default=15.0, help="no larger size once a run takes this long")
    ap.add_argument("--write", nargs=3, metavar=("SHAPE", "N", "FILE"), help="write one message and exit")
    args = ap.parse_args()

    shapes = {s[0]: s for s in SHAPES}
    if args.list:
        for name, n0, _, unit in SHAPES:
            print("%-30s n=%-9d %s" % (name, n0, unit))
        return 0
    if args.write:
        name, n, path = args.write
        data = shapes[name][2](int(n))
        with open(path, "wb") as f:
            f.write(data)
        print("%s: %d bytes" % (path, len(data)))
        return 0
    if not os.access(BIN, os.X_OK):
        sys.exit("build first: cargo build --release (%s missing)" % BIN)

    chosen = [s for s in SHAPES if not args.k or any(k in s[0] for k in args.k)]
    print("%-30s %10s %11s %9s %7s  %s" % ("shape", "n", "bytes", "seconds", "growth", "report"))
    flagged = []
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        for name, n0, gen, unit in chosen:
            prev = None
            worst = 0.0
            n = max(1, int(n0 * args.scale))
            for step in range(args.steps):
                data = gen(n)
                if len(data) > LIMIT:
                    print("%-30s %10d %11d %9s %7s  %s" % (name, n, len(data), "-", "", "over 64 MiB, left out"))
                    break
                path = os.path.join(tmp, "m.eml")
                with open(path, "wb") as f:
                    f.write(data)
                del data
                size = os.path.getsize(path)
                dt, rc, note = run_one(path, args.timeout)
                growth = "" if prev is None or prev < 0.02 else "%.1fx" % (dt / prev)
                print("%-30s %10d %11d %9.3f %7s  %s" % (name, n, size, dt, growth, note), flush=True)
                if prev is not None and prev >= 0.2:
                    worst = max(worst, dt / prev)
                prev = dt
                if rc is None or rc != 0 or dt > args.stop:
                    flagged.append((name, n, size, dt if rc in (None, 0) else "exit status %d" % rc))
                    break
                n *= 2
            if worst >= 3.0:
                flagged.append((name, n, None, worst))
    if flagged:
        print("\nsuperlinear or slow:")
        for name, n, size, v in flagged:
            if size is None:
                print("  %-30s growth %.1fx per doubling" % (name, v))
            elif isinstance(v, str):
                print("  %-30s n=%d (%d bytes): %s" % (name, n, size, v))
            else:
                print("  %-30s n=%d (%d bytes) took %.1f s" % (name, n, size, v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
