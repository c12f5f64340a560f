#!/usr/bin/python3
"""Integration tests of issue 12 against the real ditd on 127.0.0.1 with the tiny model: the
web page's HTTP side (headers, caching, the web_ui switch), the OpenAI images API, the job list
(GET /jobs) with per-key visibility and admin keys, and image-sized previews. The page's
behaviour in a browser is tests/browser/. One test per run:

    test_web.py --ditd build/src/daemon/ditd --workdir build/tests/daemon/work NAME
"""
import base64
import json
import re
import struct
import sys
import time
import zlib

from harness import Daemon, check, is_png, registry, run_test, sse_events

TESTS, test = registry()
SLOW = {"DITD_TEST_STEP_DELAY_MS": "20"}


def png_info(data):
    """(width, height, {tEXt key: value}) of a PNG."""
    check(is_png(data), "not a PNG: %r" % data[:16])
    pos, text, size = 8, {}, None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"tEXt":
            k, _, v = body.partition(b"\0")
            text[k.decode()] = v.decode()
        pos += 12 + n
    return size[0], size[1], text


def png_pixels(data):
    """Unfiltered rows of an 8-bit RGB PNG without interlace: bytes per pixel row."""
    w, h, _ = png_info(data)
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    raw = zlib.decompress(idat)
    return raw, w, h


@test
def web_page(a):
    """GET / serves the built-in page with its security and cache headers; web_ui = no hides it;
    with API keys the page (and only the page) loads without one."""
    with Daemon(a.ditd, a.model, "--api-keys", "k1") as d:
        d.wait_ready()
        s, h, page = d.request("GET", "/")
        check(s == 200 and h["content-type"] == "text/html; charset=utf-8", "GET / -> %d %s" % (s, h))
        csp = h["content-security-policy"]
        for part in ("default-src 'none'", "script-src 'self'", "connect-src 'self'",
                     "frame-ancestors 'none'", "base-uri 'none'"):
            check(part in csp, "CSP lacks %s: %s" % (part, csp))
        check("unsafe-inline" not in csp and "http" not in csp, "CSP allows too much: %s" % csp)
        check(h["x-content-type-options"] == "nosniff" and h["cache-control"] == "no-cache", str(h))
        text = page.decode()
        check(not re.search(r"(src|href)=\"(https?:)?//", text), "the page references another host")
        check("<script>" not in text and " style=" not in text, "inline script or style")
        urls = re.findall(r"(?:src|href)=\"(/ui/[^\"]+)\"", text)
        check(len(set(urls)) == 3, "page files %s" % urls)
        types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        for u in set(urls):
            s, hh, body = d.request("GET", u)
            ext = u[u.rindex("."):u.index("?")]
            check(s == 200 and hh["content-type"].startswith(types[ext]) and body, "%s -> %d" % (u, s))
            check("immutable" in hh["cache-control"] and "max-age=31536000" in hh["cache-control"], u)
            code = body.decode().replace("http://www.w3.org/2000/svg", "")   # a name, not a fetch
            check("http://" not in code and "https://" not in code, "%s names another host" % u)
        # Revalidation: the same ETag gets 304 with no body; HEAD has the headers only.
        s, h2, body = d.request("GET", "/", headers={"If-None-Match": h["etag"]})
        check(s == 304 and body == b"" and h2["etag"] == h["etag"], "304 -> %d" % s)
        s, h2, body = d.request("HEAD", "/")
        check(s == 200 and body == b"" and h2["content-type"].startswith("text/html"), "HEAD")
        s, h2, _ = d.request("GET", "/favicon.ico")
        check(s == 200 and h2["content-type"] == "image/svg+xml", "favicon")
        s, h2, b = d.json("GET", "/ui/nothing.js")
        check(s == 404 and b["error"]["type"] == "not_found_error", "unknown file -> %d" % s)
        s, h2, b = d.json("POST", "/", {"class": 1}, {"Authorization": "Bearer k1"})
        check(s == 405 and h2["allow"] == "GET, HEAD", "POST / -> %d" % s)
        # The page is public; the API behind it is not.
        check(d.request("GET", "/info")[0] == 401, "info needs the key")
        check(d.request("GET", "/jobs")[0] == 401, "the job list needs the key")
    with Daemon(a.ditd, a.model, "--web-ui", "no") as d:
        d.wait_ready()
        s, _, b = d.json("GET", "/")
        check(s == 404 and "web_ui" in b["error"]["message"], "web_ui = no -> %d %s" % (s, b))
        check(d.request("GET", "/ui/app.js")[0] == 404, "files hidden too")
        check(d.request("POST", "/generate", {"class": 1})[0] == 200, "the API still works")


# The request the official `openai` Python client sends for
#   client.images.generate(prompt="sneaker", n=2, size="16x16", response_format="b64_json",
#                          extra_body={"seed": 5, "steps": 12})
OPENAI_HEADERS = {"Authorization": "Bearer sk-anything", "Content-Type": "application/json",
                  "Accept": "application/json", "User-Agent": "OpenAI/Python 1.51.0",
                  "X-Stainless-Lang": "python", "X-Stainless-Package-Version": "1.51.0"}


@test
def openai_images(a):
    """POST /v1/images/generations: prompt = class name or id, b64_json and url, the model's own
    size only, extensions, OpenAI's error envelope; GET /v1/models."""
    with Daemon(a.ditd, a.model) as d:
        d.wait_ready()
        info = d.json("GET", "/info")[2]["model"]
        size = "%dx%d" % (info["image_size"], info["image_size"])
        body = {"prompt": "sneaker", "n": 2, "size": size, "response_format": "b64_json",
                "seed": 5, "steps": 12}
        s, h, r = d.json("POST", "/v1/images/generations", body, OPENAI_HEADERS)
        check(s == 200 and len(r["data"]) == 2 and isinstance(r["created"], int), "b64 %d %s" % (s, r))
        check(h["x-seed"] == "5", "X-Seed")
        pngs = [base64.b64decode(x["b64_json"]) for x in r["data"]]
        w, hh, text = png_info(pngs[0])
        check((w, hh) == (info["image_size"],) * 2, "size %dx%d" % (w, hh))
        check(text["class"] == "7" and text["seed"] == "5" and text["steps"].startswith("12"), str(text))
        check(r["data"][0]["revised_prompt"] == "sneaker", "revised_prompt")
        # The same request natively gives the same bytes (prompt by id, default format).
        s, _, native = d.json("POST", "/generate", {"class": 7, "seed": 5, "steps": 12, "n": 2},
                              {"Accept": "application/json"})
        check([base64.b64decode(x["b64"]) for x in native["images"]] == pngs, "differs from /generate")
        s, _, r = d.json("POST", "/v1/images/generations", {"prompt": "7", "seed": 5, "steps": 12})
        check(s == 200 and base64.b64decode(r["data"][0]["b64_json"]) == pngs[0], "prompt as id")
        # url: absolute, from the Host used, served from the job store.
        s, _, r = d.json("POST", "/v1/images/generations",
                         dict(body, response_format="url", n=1), {"Host": "images.example:8443"})
        url = r["data"][0]["url"]
        check(s == 200 and re.match(r"^http://images\.example:8443/jobs/[0-9a-f]{16}/images/0\.png$", url),
              "url %s" % url)
        s, hh, img = d.request("GET", url[url.index("/jobs/"):])
        check(s == 200 and img == pngs[0], "url image -> %d" % s)
        s, _, r = d.json("POST", "/v1/images/generations", dict(body, response_format="url", n=1),
                         {"Host": "evil.example/<script>"})
        check(r["data"][0]["url"].startswith("http://127.0.0.1:%d/" % d.port), "bad Host not echoed")

        def refused(req, param, words, status=400):
            s, _, r = d.json("POST", "/v1/images/generations", req, OPENAI_HEADERS)
            e = r["error"]
            check(s == status and set(e) == {"message", "type", "param", "code"},
                  "%s -> %d %s" % (req, s, r))
            check(e["param"] == param and e["type"] == "invalid_request_error", str(e))
            for w in words:
                check(w in e["message"], "%r not in %r" % (w, e["message"]))

        refused({"prompt": "a cat in a hat"}, "prompt", ["a cat in a hat", "0 tshirt", "9 ankle boot"])
        refused({"n": 1}, "prompt", ["prompt is required", "7 sneaker"])
        refused({"prompt": "bag", "size": "1024x1024"}, "size", ["1024x1024", size])
        refused({"prompt": "bag", "response_format": "png"}, "response_format", ["b64_json", "url"])
        refused({"prompt": "bag", "model": "dall-e-3"}, "model", [info["name"]])
        refused({"prompt": "bag", "quality": "hd"}, "quality", ["unknown field"])
        refused({"prompt": "bag", "n": 50}, "n", ["n 50 is outside 1..8"])
        refused({"prompt": "bag", "cfg": -1}, "cfg", ["cfg"])
        s, _, r = d.json("POST", "/v1/images/generations", "{not json", OPENAI_HEADERS)
        check(s == 400 and r["error"]["param"] is None and r["error"]["code"] is None, str(r))
        check(d.json("POST", "/v1/images/generations", {"prompt": "bag", "model": info["name"],
                                                        "size": "auto", "user": "u1"})[0] == 200,
              "model name, size auto and user accepted")
        s, h, r = d.json("GET", "/v1/images/generations")
        check(s == 405 and h["allow"] == "POST" and "code" in r["error"], "GET -> %d" % s)
        s, _, r = d.json("GET", "/v1/models")
        check(s == 200 and r["object"] == "list" and r["data"][0]["id"] == info["name"] and
              r["data"][0]["object"] == "model", "models %s" % r)
        s, _, r = d.json("GET", "/v1/models/" + info["name"])
        check(s == 200 and r["id"] == info["name"], "model")
        s, _, r = d.json("GET", "/v1/models/dall-e-3")
        check(s == 404 and r["error"]["code"] == "model_not_found", "unknown model %s" % r)
    with Daemon(a.ditd, a.model, "--api-keys", "k1") as d:
        d.wait_ready()
        s, _, r = d.json("POST", "/v1/images/generations", {"prompt": "bag"})
        check(s == 401 and r["error"]["code"] == "invalid_api_key" and r["error"]["param"] is None,
              "401 envelope %s" % r)
        s, _, r = d.json("POST", "/v1/images/generations", {"prompt": "bag", "steps": 5},
                         {"Authorization": "Bearer k1"})
        check(s == 200, "with the key")


def make_jobs(d, key=None, n=3):
    hdr = {"Authorization": "Bearer " + key} if key else {}
    ids = []
    for i in range(n):
        s, _, j = d.json("POST", "/jobs", {"class": i, "steps": 4, "seed": i}, hdr)
        check(s == 202, "POST /jobs -> %d" % s)
        ids.append(j["id"])
    return ids


def wait_done(d, ids, hdr=None):
    deadline = time.time() + 30
    for i in ids:
        while d.json("GET", "/jobs/" + i, None, hdr)[2]["status"] not in ("completed", "cancelled"):
            check(time.time() < deadline, "job %s did not finish" % i)
            time.sleep(0.02)


@test
def jobs_list(a):
    """GET /jobs: queued, running and finished jobs of every kind, newest first, with position and
    progress, no images; limit + cursor pages through all of them; status filter."""
    with Daemon(a.ditd, a.model, "--max-batch", "2", env=SLOW) as d:
        d.wait_ready()
        s, _, r = d.json("GET", "/jobs")
        check(s == 200 and r == {"jobs": [], "total": 0, "has_more": False, "next_cursor": None}, str(r))
        plain = d.json("POST", "/generate", {"class": 9, "steps": 3, "cfg": 1, "n": 1},
                       {"Accept": "application/json"})[2]["id"]
        first = d.json("POST", "/jobs", {"class": 1, "steps": 400})[2]["id"]
        queued = [d.json("POST", "/jobs", {"class": 2 + i, "steps": 400})[2]["id"] for i in range(3)]
        deadline = time.time() + 10
        while d.json("GET", "/jobs/" + first)[2]["status"] != "running":
            check(time.time() < deadline, "first job never ran")
            time.sleep(0.02)
        s, _, r = d.json("GET", "/jobs")
        ids = [j["id"] for j in r["jobs"]]
        check(ids == queued[::-1] + [first, plain], "order %s" % ids)
        byid = {j["id"]: j for j in r["jobs"]}
        check(byid[plain]["kind"] == "generate" and byid[plain]["status"] == "completed" and
              "url" not in byid[plain], str(byid[plain]))
        check(byid[first]["status"] == "running" and byid[first]["url"] == "/jobs/" + first and
              byid[first]["class_name"] == "trouser", str(byid[first]))
        for pos, i in enumerate(queued):
            check(byid[i]["status"] == "queued" and byid[i]["queue_position"] == pos, str(byid[i]))
        for j in r["jobs"]:
            check(set(j) >= {"id", "status", "progress", "class", "created", "kind", "n"}, str(j))
            # A job id is hex and may contain "b64": look for the key.
            check("images" not in j and "\"b64\":" not in json.dumps(j), "the list carries images")
        # Pages of 2 walk the whole list once.
        seen, cursor = [], None
        for _ in range(10):
            q = "/jobs?limit=2" + ("&cursor=" + cursor if cursor else "")
            s, _, r = d.json("GET", q)
            check(s == 200 and len(r["jobs"]) <= 2 and r["total"] == 5, "%s -> %s" % (q, r))
            seen += [j["id"] for j in r["jobs"]]
            cursor = r["next_cursor"]
            if not r["has_more"]:
                check(cursor is None, "last page has no cursor")
                break
        check(seen == ids, "pages %s vs %s" % (seen, ids))
        s, _, r = d.json("GET", "/jobs?status=queued,running")
        check([j["id"] for j in r["jobs"]] == queued[::-1] + [first], "status filter")
        for q, param in (("limit=0", "limit"), ("limit=x", "limit"), ("cursor=-1", "cursor"),
                         ("status=sleeping", "status")):
            s, _, r = d.json("GET", "/jobs?" + q)
            check(s == 400 and r["error"]["param"] == param, "%s -> %d %s" % (q, s, r))
        check(d.json("DELETE", "/jobs")[1]["allow"] == "GET, POST", "Allow of /jobs")
        for i in [first] + queued:
            d.json("DELETE", "/jobs/" + i)
        s, _, r = d.json("GET", "/jobs?status=cancelled,cancelling")
        check(sorted(j["id"] for j in r["jobs"]) == sorted([first] + queued), "cancelled %s" % r)


@test
def jobs_visibility(a):
    """With API keys a key lists and reaches only its own jobs; an admin key (admin_api_keys or
    admin_api_key_file) sees everyone's."""
    conf = "[auth]\napi_keys = alice, bob\nadmin_api_keys = root\n"
    with Daemon(a.ditd, a.model, conf=conf) as d:
        d.wait_ready()
        alice, bob, root = ({"Authorization": "Bearer " + k} for k in ("alice", "bob", "root"))
        mine = make_jobs(d, "alice", 2)
        theirs = make_jobs(d, "bob", 1)
        wait_done(d, mine, alice)
        wait_done(d, theirs, bob)
        s, _, r = d.json("GET", "/jobs", None, alice)
        check(s == 200 and [j["id"] for j in r["jobs"]] == mine[::-1] and r["total"] == 2, str(r))
        s, _, r = d.json("GET", "/jobs", None, root)
        check([j["id"] for j in r["jobs"]] == theirs + mine[::-1], "admin sees all: %s" % r)
        for path in ("/jobs/%s", "/jobs/%s/events", "/jobs/%s/images/0.png"):
            check(d.request("GET", path % theirs[0], None, alice)[0] == 404, "alice reads bob's " + path)
            check(d.request("GET", path % theirs[0], None, bob)[0] == 200, "bob reads " + path)
            check(d.request("GET", path % theirs[0], None, root)[0] == 200, "admin reads " + path)
        check(d.request("DELETE", "/jobs/" + theirs[0], None, alice)[0] == 404, "alice deletes bob's")
        # A /generate request is listed for its key too, never with its image.
        d.json("POST", "/generate", {"class": 4, "steps": 3}, dict(bob, Accept="application/json"))
        s, _, r = d.json("GET", "/jobs", None, bob)
        check(len(r["jobs"]) == 2 and r["jobs"][0]["kind"] == "generate", str(r))
        check(d.json("GET", "/jobs", None, alice)[2]["total"] == 2, "alice unchanged")
        # Admin keys from a file, after a reload.
        path = d.tmp + "/admin-keys"
        with open(path, "w") as f:
            f.write("# operators\nops-key\n")
        with open(d.conf, "a") as f:
            f.write("admin_api_key_file = %s\n" % path)
        d.signal(1)     # SIGHUP
        deadline = time.time() + 10
        while d.request("GET", "/jobs", None, {"Authorization": "Bearer ops-key"})[0] != 200:
            check(time.time() < deadline, "reload did not add the admin key file")
            time.sleep(0.05)
        s, _, r = d.json("GET", "/jobs", None, {"Authorization": "Bearer ops-key"})
        check(r["total"] == 4, "file admin key sees all: %s" % r)


@test
def previews_image_size(a):
    """Preview events are PNGs at the image's own size, say their method, and /info names it."""
    with Daemon(a.ditd, a.model) as d:
        d.wait_ready()
        info = d.json("GET", "/info")[2]["model"]
        check(info["preview"] in ("decode", "linear"), "/info preview %s" % info.get("preview"))
        c = d.conn()
        c.request("POST", "/generate", json.dumps({"class": 3, "steps": 12, "preview": 3,
                                                   "stream": True, "seed": 1}))
        evs = list(sse_events(c.getresponse()))
        c.close()
        previews = [e for _, n, e in evs if n == "preview"]
        check([p["step"] for p in previews] == [3, 6, 9], "preview steps %s" % previews)
        for p in previews:
            png = base64.b64decode(p["b64"])
            w, h, _ = png_info(png)
            check(p["size"] == info["image_size"] == w == h, "preview %dx%d, size %s" % (w, h, p["size"]))
            check(p["method"] == info["preview"], "method %s" % p["method"])
            raw, _, _ = png_pixels(png)
            check(len(set(raw)) > 8, "a flat preview")


if __name__ == "__main__":
    sys.exit(run_test(TESTS))
