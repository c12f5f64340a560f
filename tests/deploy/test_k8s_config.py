#!/usr/bin/python3
"""The Kubernetes manifests (deploy/kubernetes) agree with ditd and with each other:

* the ConfigMap carries exactly conf/ditd.conf's keys, in their sections, with its defaults
  unless a comment says why; ditd starts with it (the real daemon, on 127.0.0.1 with a tiny
  model); the probe and scrape paths answer 200 on that daemon without an API key, and the
  metric the autoscalers use is in its /metrics;
* ports: listen's port = the container port the probes and the Service name; the
  ServiceMonitor scrapes a port the Service has;
* shutdown: terminationGracePeriodSeconds covers the preStop sleep, drain_timeout and ditd's
  2 s for the last answers; the readiness probe notices a drain before it ends;
* wiring: selectors match the pod labels; the HPA, ScaledObject and PDB target this
  Deployment; the HPA's metric is the one the prometheus-adapter rule serves; the KEDA query
  names the namespace the kustomizations deploy to; the --config path is the mounted key; the
  image tag is the project version; the user is the Dockerfile's.

Each rule is also run on a broken copy of the manifests, which it must refuse.

    test_k8s_config.py --ditd build/src/daemon/ditd --workdir DIR
"""
import argparse
import configparser
import copy
import glob
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy", "kubernetes")
sys.path.insert(0, os.path.join(ROOT, "tests", "daemon"))

from harness import Daemon, ensure_model  # noqa: E402

FLUSH_S = 2         # ditd gives the last answers this long after the drain (server.c)
MARGIN_S = 3        # for the kubelet and the exit itself


def load_manifests():
    """{kind/name: document} of every manifest, and the kustomizations."""
    docs, kustomizations = {}, []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "**", "*.yaml"), recursive=True)):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not doc:
                    continue
                if doc.get("kind") == "Kustomization":
                    kustomizations.append((os.path.relpath(path, DEPLOY), doc))
                else:
                    docs["%s/%s" % (doc["kind"], doc["metadata"]["name"])] = doc
    return docs, kustomizations


def ini(text):
    p = configparser.ConfigParser(interpolation=None, comment_prefixes=("#", ";"),
                                  inline_comment_prefixes=(";",))
    p.optionxform = str
    p.read_string(text)
    return {(sec, k): v for sec in p.sections() for k, v in p.items(sec)}


def conf_of(docs):
    return ini(docs["ConfigMap/ditd-config"]["data"]["ditd.conf"])


def value(conf, key):
    for (_, k), v in conf.items():
        if k == key:
            return v
    raise KeyError(key)


def container(docs):
    return docs["Deployment/ditd"]["spec"]["template"]["spec"]["containers"][0]


def named_port(docs, name):
    for p in container(docs)["ports"]:
        if p["name"] == name or p["containerPort"] == name:
            return p["containerPort"]
    raise AssertionError("the container has no port %r" % name)


def probes(docs):
    c = container(docs)
    return {k: c[k] for k in ("startupProbe", "readinessProbe", "livenessProbe")}


# ---- rules: each returns a list of problems -------------------------------------------------

def rule_keys(docs, ctx):
    """The ConfigMap has conf/ditd.conf's keys, in the same sections."""
    mine, theirs = set(conf_of(docs)), set(ctx["conf"])
    out = ["conf/ditd.conf has %s [%s], the ConfigMap does not: add it to "
           "deploy/kubernetes/base/configmap.yaml" % (k, s) for s, k in sorted(theirs - mine)]
    out += ["the ConfigMap has %s [%s], which conf/ditd.conf does not" % (k, s)
            for s, k in sorted(mine - theirs)]
    return out


def rule_defaults(docs, ctx):
    """Values are conf/ditd.conf's defaults, except after a comment that says why."""
    out = []
    ref = {k: v for (_, k), v in ctx["conf"].items()}
    after_comment = False
    for line in docs["ConfigMap/ditd-config"]["data"]["ditd.conf"].splitlines():
        line = line.strip()
        if line.startswith("#"):
            after_comment = True
            continue
        if "=" in line and not after_comment:
            k, v = (x.strip() for x in line.split("=", 1))
            if k in ref and v != ref[k]:
                out.append("%s = %s differs from conf/ditd.conf's %s with no comment saying why"
                           % (k, v, ref[k]))
        after_comment = False
    return out


def rule_ports(docs, ctx):
    """listen's port is what the probes, the Service and the ServiceMonitor reach."""
    out = []
    conf = conf_of(docs)
    listen_port = int(value(conf, "listen").rsplit(":", 1)[1])
    for name, p in probes(docs).items():
        port = named_port(docs, p["httpGet"]["port"])
        if port != listen_port:
            out.append("%s checks port %d, ditd listens on %d" % (name, port, listen_port))
    svc = docs["Service/ditd"]["spec"]["ports"]
    for sp in svc:
        if named_port(docs, sp["targetPort"]) != listen_port:
            out.append("the Service sends port %s to %s, ditd listens on %d"
                       % (sp["port"], sp["targetPort"], listen_port))
    for ep in docs["ServiceMonitor/ditd"]["spec"]["endpoints"]:
        if ep["port"] not in [sp.get("name") for sp in svc]:
            out.append("the ServiceMonitor scrapes port %r, which the Service does not name"
                       % ep["port"])
    return out


def rule_shutdown(docs, ctx):
    """The grace period covers preStop + drain_timeout + flush; readiness sees a drain."""
    out = []
    conf = conf_of(docs)
    spec = docs["Deployment/ditd"]["spec"]["template"]["spec"]
    grace = spec["terminationGracePeriodSeconds"]
    cmd = container(docs)["lifecycle"]["preStop"]["exec"]["command"]
    if len(cmd) != 2 or not cmd[0].endswith("/sleep"):
        return ["preStop is %s; this check expects [/bin/sleep, N]" % cmd]
    pre = int(cmd[1])
    drain = int(value(conf, "drain_timeout"))
    need = pre + drain + FLUSH_S + MARGIN_S
    if grace < need:
        out.append("terminationGracePeriodSeconds %d < preStop %d + drain_timeout %d + flush %d "
                   "+ margin %d = %d: the kubelet would SIGKILL a draining replica"
                   % (grace, pre, drain, FLUSH_S, MARGIN_S, need))
    rp = container(docs)["readinessProbe"]
    if rp.get("periodSeconds", 10) * rp.get("failureThreshold", 3) > pre + drain:
        out.append("the readiness probe needs %d s to see a drain that lasts at most %d s"
                   % (rp.get("periodSeconds", 10) * rp.get("failureThreshold", 3), pre + drain))
    return out


def rule_auth(docs, ctx):
    """Probes and scrapes need no API key."""
    conf = conf_of(docs)
    out = []
    if value(conf, "public_health") not in ("yes", "true", "on", "1"):
        out.append("public_health must be yes: the probes send no API key")
    if value(conf, "public_metrics") not in ("yes", "true", "on", "1"):
        out.append("public_metrics must be yes: the ServiceMonitor sends no API key")
    return out


def rule_wiring(docs, ctx):
    """Selectors, scale targets, metric names, namespace, config path, image tag, user."""
    out = []
    dep = docs["Deployment/ditd"]
    labels = dep["spec"]["template"]["metadata"]["labels"]

    def selects(sel, what):
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            out.append("%s selects %s, the pods are labelled %s" % (what, sel, labels))

    selects(dep["spec"]["selector"]["matchLabels"], "the Deployment")
    selects(docs["Service/ditd"]["spec"]["selector"], "the Service")
    selects(docs["PodDisruptionBudget/ditd"]["spec"]["selector"]["matchLabels"], "the PDB")
    svc_labels = docs["Service/ditd"]["metadata"].get("labels", {})
    sm = docs["ServiceMonitor/ditd"]["spec"]["selector"]["matchLabels"]
    if any(svc_labels.get(k) != v for k, v in sm.items()):
        out.append("the ServiceMonitor selects %s, the Service is labelled %s" % (sm, svc_labels))
    for key in ("HorizontalPodAutoscaler/ditd", "ScaledObject/ditd"):
        target = docs[key]["spec"]["scaleTargetRef"]
        if target["name"] != dep["metadata"]["name"] or target.get("kind", "Deployment") != "Deployment":
            out.append("%s scales %s, not the Deployment" % (key, target))
    hpa_metric = docs["HorizontalPodAutoscaler/ditd"]["spec"]["metrics"][0]["pods"]["metric"]["name"]
    adapter = yaml.safe_load(docs["ConfigMap/prometheus-adapter"]["data"]["config.yaml"])
    served = [r["name"].get("as") for r in adapter["rules"]]
    if hpa_metric not in served:
        out.append("the HPA uses %s; the adapter serves %s" % (hpa_metric, served))
    namespaces = {k.get("namespace") for _, k in ctx["kustomizations"]}
    if len(namespaces) != 1:
        out.append("the kustomizations deploy to several namespaces: %s" % namespaces)
    q = docs["ScaledObject/ditd"]["spec"]["triggers"][0]["metadata"]["query"]
    if 'namespace="%s"' % next(iter(namespaces)) not in q:
        out.append("the KEDA query %r is not about namespace %s" % (q, namespaces))
    c = container(docs)
    cfg = c["command"][c["command"].index("--config") + 1]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    ok = any(os.path.join(mounts[n], "ditd.conf") == cfg and
             vols[n].get("configMap", {}).get("name") == "ditd-config" for n in mounts)
    if not ok:
        out.append("--config %s is not the ConfigMap's ditd.conf as mounted (%s)" % (cfg, mounts))
    if c["securityContext"].get("readOnlyRootFilesystem") and value(conf_of(docs), "port_file"):
        out.append("port_file is set but the root file system is read-only")
    with open(os.path.join(ROOT, "meson.build")) as f:
        version = re.search(r"version\s*:\s*'([^']+)'", f.read()).group(1)
    if not c["image"].endswith(":" + version):
        out.append("the image %s is not tagged with the project version %s" % (c["image"], version))
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        uid = int(re.search(r"useradd --uid (\d+)", f.read()).group(1))
    if dep["spec"]["template"]["spec"]["securityContext"].get("runAsUser") != uid:
        out.append("runAsUser is not the image's user %d" % uid)
    res = c["resources"]
    if res["requests"] != res["limits"]:
        out.append("requests != limits: not Guaranteed QoS")
    return out


RULES = [rule_keys, rule_defaults, rule_ports, rule_shutdown, rule_auth, rule_wiring]


# Broken copies each rule must refuse.
def _set(path, v):
    def f(docs):
        obj = docs
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = v
    return f


def _conf(key, new):
    def f(docs):
        cm = docs["ConfigMap/ditd-config"]["data"]
        cm["ditd.conf"] = re.sub(r"(?m)^(\s*%s\s*=).*$" % key, r"\1 %s" % new, cm["ditd.conf"])
    return f


def _drop_key(key):
    def f(docs):
        cm = docs["ConfigMap/ditd-config"]["data"]
        cm["ditd.conf"] = re.sub(r"(?m)^\s*%s\s*=.*\n" % key, "", cm["ditd.conf"])
    return f


BROKEN = [
    (rule_keys, _drop_key("max_queue")),
    (rule_defaults, _conf("max_queue", "7")),
    (rule_ports, _conf("listen", "0.0.0.0:9090")),
    (rule_shutdown, _set(["Deployment/ditd", "spec", "template", "spec",
                          "terminationGracePeriodSeconds"], 30)),
    (rule_shutdown, _conf("drain_timeout", "60")),
    (rule_auth, _conf("public_health", "no")),
    (rule_wiring, _set(["Service/ditd", "spec", "selector"], {"app": "other"})),
    (rule_wiring, _set(["HorizontalPodAutoscaler/ditd", "spec", "metrics", 0, "pods", "metric",
                        "name"], "ditd_queue_size")),
]


def live_checks(a, docs):
    """ditd starts with the ConfigMap's file; probes and scrape answer 200 without a key; the
    autoscalers' metric exists."""
    text = docs["ConfigMap/ditd-config"]["data"]["ditd.conf"]
    with Daemon(a.ditd, a.model, conf=text) as d:
        d.wait_ready()
        paths = {p["httpGet"]["path"] for p in probes(docs).values()}
        paths |= {ep.get("path", "/metrics") for ep in docs["ServiceMonitor/ditd"]["spec"]["endpoints"]}
        for p in sorted(paths):
            s = d.request("GET", p)[0]
            if s != 200:
                raise AssertionError("GET %s answers %d on ditd started with the ConfigMap" % (p, s))
        _, _, body = d.request("GET", "/metrics")
        names = {line.split("{")[0].split(" ")[0] for line in body.decode().splitlines()
                 if line and not line.startswith("#")}
        adapter = yaml.safe_load(docs["ConfigMap/prometheus-adapter"]["data"]["config.yaml"])
        wanted = {re.match(r"\s*'?(\w+)", r["seriesQuery"]).group(1) for r in adapter["rules"]}
        wanted |= set(re.findall(r"\b(ditd_\w+)\b",
                                 docs["ScaledObject/ditd"]["spec"]["triggers"][0]["metadata"]["query"]))
        missing = wanted - names
        if missing:
            raise AssertionError("the autoscalers use %s, which ditd's /metrics lacks" % missing)
        print("ok  ditd starts with the ConfigMap; %s answer 200; /metrics has %s"
              % (", ".join(sorted(paths)), ", ".join(sorted(wanted))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ditd", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    docs, kustomizations = load_manifests()
    with open(os.path.join(ROOT, "conf", "ditd.conf")) as f:
        ctx = {"conf": ini(f.read()), "kustomizations": kustomizations}
    failed = 0
    for rule in RULES:
        problems = rule(docs, ctx)
        for p in problems:
            print("FAIL %s: %s" % (rule.__name__, p))
        failed += len(problems)
        if not problems:
            print("ok  %s: %s" % (rule.__name__, rule.__doc__ or ""))
    for rule, breaker in BROKEN:
        bad = copy.deepcopy(docs)
        breaker(bad)
        problems = rule(bad, ctx)
        if not problems:
            print("FAIL %s accepted a broken copy (%s)" % (rule.__name__, breaker))
            failed += 1
        else:
            print("ok  %s refuses a broken copy: %s" % (rule.__name__, problems[0]))
    a.model = ensure_model(a.workdir)
    live_checks(a, docs)
    print("%d problem(s)" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
