"""Parity: tools/convert/dit_convert.py turns torch.save checkpoints into model directories that
`dit forward` / `dit decode` run like the PyTorch reference.

The checkpoints are made here with torch.save from random tools/pyref models: a raw state_dict (the
official DiT-XL-2-*.pt layout), a facebookresearch/DiT train.py checkpoint ({"model", "ema",
"opt", "args"}; the converter must take "ema"), BF16 and F16 state dicts, tensors saved as
non-contiguous views (transposed, permuted, offset into a larger storage, shared storage, stride
0), a diffusers-layout transformer .bin with its config (a hub snapshot), and VAEs as a Stable
Diffusion .ckpt (first_stage_model.*), a bare ldm .ckpt, an ldm .safetensors and diffusers
directories (.safetensors or .bin only). Hostile files (a pickle calling os.system, the legacy
format, a tensor reaching past its storage, a truncated storage, BUILD on a tensor) must be
refused, and nothing in them may run. The converter runs with a `torch` module that raises on
import, so it is proven not to use torch.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import zipfile

import numpy as np
import torch

from common import SRC_ROOT, CheckFailed, Harness, compare, distinct, load_npy, save_npy
import models
from models import DIFFUSERS, ORIGINAL
from pyref import export, st

CONVERTER = os.path.join(SRC_ROOT, "tools", "convert", "dit_convert.py")
ARCH = dict(input_size=8, patch_size=2, hidden_size=96, depth=2, num_heads=3, num_classes=10)
VAE = dict(block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=32)
IMAGE = 16                       # latent 8, two VAE levels -> x2
T = [999, 0, 17, 500]
Y = [3, 10, 0, 9]                # 10 = the null class


class Ctx:
    def __init__(self, h):
        self.h = h
        poison = h.path("notorch", "torch", "__init__.py")
        with open(poison, "w") as f:
            f.write("raise ImportError('dit_convert.py must not import torch')\n")
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.path.dirname(os.path.dirname(poison))
        self.m = models.build_dit(5, **ARCH)
        self.vae = models.build_vae(5, **VAE)
        names = h.path("names.json")
        with open(names, "w") as f:
            json.dump(["class %d, synonym" % i for i in range(ARCH["num_classes"])], f)
        self.names = names

    def convert(self, tag, argv, expect_ok=True):
        """Run the converter; returns (returncode, stdout + stderr)."""
        cmd = [sys.executable, CONVERTER] + [str(a) for a in argv]
        if self.h.args.verbose:
            print("  $", " ".join(cmd))
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env,
                           timeout=self.h.args.timeout)
        text = r.stdout.decode("utf-8", "replace")
        with open(self.h.path(tag, "convert.log"), "w") as f:
            f.write(" ".join(cmd) + "\n" + text)
        if expect_ok and r.returncode != 0:
            raise CheckFailed("dit_convert.py exited %d: %s" % (r.returncode, text.strip()[-1500:]))
        return r.returncode, text

    def forward(self, tag, model_dir, ref_model, numerics=ORIGINAL, seed=3):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((len(T), ref_model.in_channels, ref_model.input_size,
                                 ref_model.input_size)).astype(np.float32)
        xin = save_npy(self.h.path(tag, "x.npy"), x)
        out = self.h.path(tag, "out.npy")
        self.h.run_dit(["forward", "--model", model_dir, "--x", xin, "--t", ",".join(map(str, T)),
                        "--y", ",".join(map(str, Y)), "-o", out])
        ref = models.dit_forward(models.with_numerics(ref_model, numerics), x, T, Y)
        return load_npy(out, ndim=4), ref, x

    def check_forward(self, tag, model_dir, ref_model, numerics=ORIGINAL):
        ours, ref, _ = self.forward(tag, model_dir, ref_model, numerics)
        return "forward " + compare(ours, ref)

    def check_decode(self, tag, model_dir, vae):
        rng = np.random.default_rng(7)
        z = (rng.standard_normal((2, 4, ARCH["input_size"], ARCH["input_size"])) * 0.8).astype(
            np.float32)
        zin = save_npy(self.h.path(tag, "z.npy"), z)
        out = self.h.path(tag, "dec.npy")
        self.h.run_dit(["decode", "--model", model_dir, "--latent", zin, "-o", out])
        return "decode " + compare(load_npy(out, ndim=4), models.vae_decode(vae, z))

    # checkpoint files ------------------------------------------------------------------------
    def ldm_ckpt(self, tag, prefixed=True, extra=True):
        """The VAE as a CompVis/ldm .ckpt ({"state_dict": ...}), optionally inside a fake full
        Stable Diffusion checkpoint (first_stage_model.* plus other models' tensors)."""
        sd = export.vae_state(self.vae, "ldm_prefixed" if prefixed else "ldm")
        if extra:
            g = torch.Generator().manual_seed(1)
            junk = {"model.diffusion_model.input_blocks.0.0.weight": torch.randn(8, 4, 3, 3,
                                                                                 generator=g),
                    "cond_stage_model.transformer.embeddings.weight": torch.randn(6, 5,
                                                                                  generator=g)}
            if not prefixed:
                junk = {"loss.logvar": torch.zeros(()), "loss.discriminator.main.0.weight":
                        torch.randn(4, 3, 4, 4, generator=g)}
            sd.update(junk)
        p = self.h.path(tag, "vae.ckpt")
        torch.save({"state_dict": sd, "global_step": 840000}, p)
        return p

    def vae_dir(self, tag, fmt="safetensors"):
        d = os.path.dirname(self.h.path(tag, "sd-vae", "config.json"))
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(self.vae.config_json(), f)
        sd = {k: v.detach().clone() for k, v in self.vae.state_dict().items()}
        if fmt == "safetensors":
            st.save(sd, os.path.join(d, "diffusion_pytorch_model.safetensors"),
                    metadata={"format": "pt"})
        else:
            torch.save(sd, os.path.join(d, "diffusion_pytorch_model.bin"))
        return d


def sd_of(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def read_st(path):
    """(tensors, dtypes) of a safetensors file written by the converter."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return st.load(path), {k: v["dtype"] for k, v in header.items()}


def same_tensors(path, want):
    """The converted file holds exactly the tensors of `want`, bit for bit."""
    got, _ = read_st(path)
    if set(got) != set(want):
        raise CheckFailed("tensor names differ: missing %s, extra %s" % (
            sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5]))
    for k, v in want.items():
        a, b = got[k], v.contiguous()
        if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(
                a.view(torch.int16) if a.dtype == torch.bfloat16 else a,
                b.view(torch.int16) if b.dtype == torch.bfloat16 else b):
            raise CheckFailed("%s differs from the checkpoint (%s %s vs %s %s)"
                              % (k, a.dtype, list(a.shape), b.dtype, list(b.shape)))
    return "%d tensors bit-identical" % len(want)


# ---------------------------------------------------------------------------------------------
# Cases

def case_raw(c):
    """The official layout: a raw state_dict; the VAE inside a Stable Diffusion .ckpt."""
    tag = "raw"
    p = c.h.path(tag, "DiT-tiny.pt")
    torch.save(c.m.state_dict(), p)
    out = os.path.dirname(c.h.path(tag, "model", "x"))
    _, log = c.convert(tag, ["--dit", p, "--vae-ckpt", c.ldm_ckpt(tag), "--heads", 3,
                             "--image-size", IMAGE, "--num-classes", 10, "--class-names", c.names,
                             "-o", out])
    if "raw state_dict" not in log:
        raise CheckFailed("the summary does not say which weights were used:\n" + log)
    cfg = json.load(open(os.path.join(out, "transformer", "config.json")))
    want = {"sample_size": 8, "patch_size": 2, "in_channels": 4, "out_channels": 8,
            "num_layers": 2, "num_attention_heads": 3, "attention_head_dim": 32,
            "num_embeds_ada_norm": 10}
    bad = {k: (cfg.get(k), v) for k, v in want.items() if cfg.get(k) != v}
    if bad:
        raise CheckFailed("config.json (got, want): %s" % bad)
    vcfg = json.load(open(os.path.join(out, "vae", "config.json")))
    if vcfg["block_out_channels"] != [32, 64] or vcfg["layers_per_block"] != 1:
        raise CheckFailed("vae/config.json: %s" % vcfg)
    idx = json.load(open(os.path.join(out, "model_index.json")))
    if idx["id2label"].get("9") != "class 9, synonym" or len(idx["id2label"]) != 10:
        raise CheckFailed("model_index.json id2label: %s" % idx.get("id2label"))
    msg = same_tensors(os.path.join(out, "transformer", "diffusion_pytorch_model.safetensors"),
                       sd_of(c.m))
    vsd = export.vae_state(c.vae, "ldm")
    msg += "; vae: " + same_tensors(os.path.join(out, "vae",
                                                 "diffusion_pytorch_model.safetensors"), vsd)
    return "; ".join([c.check_forward(tag, out, c.m), c.check_decode(tag, out, c.vae), msg])


def case_train(c, which):
    """A train.py checkpoint: "ema" by default, "model" with --weights model."""
    tag = "train_" + which
    raw = models.build_dit(6, **ARCH)
    opt = torch.optim.AdamW(raw.parameters(), lr=1e-4, weight_decay=0)
    loss = raw(torch.randn(2, 4, 8, 8), torch.tensor([1, 2]), torch.tensor([0, 1])).square().mean()
    loss.backward()
    opt.step()
    ckpt = {"model": raw.state_dict(), "ema": c.m.state_dict(), "opt": opt.state_dict(),
            "args": argparse.Namespace(model="DiT-XL/2", image_size=256, num_classes=10,
                                       results_dir="results", global_seed=0)}
    p = c.h.path(tag, "0400000.pt")
    torch.save(ckpt, p)
    out = os.path.dirname(c.h.path(tag, "model", "x"))
    argv = ["--dit", p, "--vae-ckpt", c.ldm_ckpt(tag, prefixed=False), "--heads", 3, "-o", out]
    if which == "model":
        argv += ["--weights", "model"]
    _, log = c.convert(tag, argv)
    if "'%s' entry" % which not in log:
        raise CheckFailed("the summary does not report the %r weights:\n%s" % (which, log))
    ref, other = (c.m, raw) if which == "ema" else (raw, c.m)
    ours, r, x = c.forward(tag, out, ref)
    msg = "forward " + compare(ours, r)
    alt = models.dit_forward(models.with_numerics(other, ORIGINAL), x, T, Y)
    return msg + "; " + distinct(r, alt, what="ema vs model")


def case_half(c, src, policy):
    """A state dict saved in BF16/F16, converted with --dtype `policy`."""
    tag = "half_%s_%s" % (src, policy)
    tdt = export.DTYPES[src]
    p = c.h.path(tag, "dit-%s.pt" % src)
    torch.save({k: v.to(tdt) for k, v in c.m.state_dict().items()}, p)
    out = os.path.dirname(c.h.path(tag, "model", "x"))
    argv = ["--dit", p, "--vae-dir", c.vae_dir(tag), "--heads", 3, "-o", out]
    if policy:
        argv += ["--dtype", policy]
    c.convert(tag, argv)
    want = {"keep": src, None: "F32", "f32": "F32", "f16": "F16", "bf16": "BF16"}[policy]
    _, dtypes = read_st(os.path.join(out, "transformer", "diffusion_pytorch_model.safetensors"))
    if set(dtypes.values()) != {want}:
        raise CheckFailed("written dtypes %s, expected %s" % (sorted(set(dtypes.values())), want))
    ref = models.rounded(c.m, src)
    msg = c.check_forward(tag, out, ref)
    msg += "; " + distinct(models.dit_forward(ref, *_tyx(c)),
                           models.dit_forward(c.m, *_tyx(c)), factor=3, what="rounding to " + src)
    if policy == "keep":
        msg += "; " + same_tensors(
            os.path.join(out, "transformer", "diffusion_pytorch_model.safetensors"),
            {k: v.to(tdt) for k, v in c.m.state_dict().items()})
    return msg


def _tyx(c):
    x = np.random.default_rng(3).standard_normal((len(T), 4, 8, 8)).astype(np.float32)
    return x, T, Y


def case_round(c, dtype):
    """F32 checkpoint written as BF16/F16: the bits must equal torch's rounding."""
    tag = "round_" + dtype
    p = c.h.path(tag, "dit.pt")
    torch.save(c.m.state_dict(), p)
    out = os.path.dirname(c.h.path(tag, "model", "x"))
    c.convert(tag, ["--dit", p, "--vae-dir", c.vae_dir(tag), "--heads", 3, "--dtype",
                    dtype.lower(), "-o", out])
    tdt = export.DTYPES[dtype]
    msg = same_tensors(os.path.join(out, "transformer", "diffusion_pytorch_model.safetensors"),
                       {k: v.to(tdt) for k, v in c.m.state_dict().items()})
    return msg + "; " + c.check_forward(tag, out, models.rounded(c.m, dtype))


def case_strided(c):
    """Tensors saved as views: transposed, permuted, offset into a larger storage, two tensors in
    one storage, stride 0. torch.save keeps the views; the converter must honour the strides."""
    tag = "strided"
    sd = sd_of(c.m)
    D = ARCH["hidden_size"]
    k = "blocks.0.attn.qkv.weight"
    sd[k] = sd[k].t().contiguous().t()
    k = "x_embedder.proj.weight"
    sd[k] = sd[k].permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    k = "blocks.1.mlp.fc1.weight"
    w = sd[k]
    big = torch.zeros(w.shape[0] + 3, w.shape[1] + 5)
    big[2:2 + w.shape[0], 1:1 + w.shape[1]] = w
    sd[k] = big[2:2 + w.shape[0], 1:1 + w.shape[1]]
    a, b = "blocks.0.adaLN_modulation.1.bias", "blocks.1.adaLN_modulation.1.bias"
    both = torch.cat([sd[a], sd[b]])
    sd[a], sd[b] = both[:6 * D], both[6 * D:]
    sd["t_embedder.mlp.0.bias"] = torch.tensor(0.25).expand(D)
    p = c.h.path(tag, "dit.pt")
    torch.save(sd, p)
    back = torch.load(p)
    views = [n for n, v in back.items() if not v.is_contiguous() or v.storage_offset()]
    if len(views) < 5:
        raise CheckFailed("torch.save did not keep the views (only %s)" % views)
    ref = models.build_dit(5, **ARCH)
    ref.load_state_dict({n: v.contiguous() for n, v in sd.items()})
    out = os.path.dirname(c.h.path(tag, "model", "x"))
    c.convert(tag, ["--dit", p, "--vae-ckpt", c.ldm_ckpt(tag), "--heads", 3, "-o", out])
    msg = same_tensors(os.path.join(out, "transformer", "diffusion_pytorch_model.safetensors"),
                       {n: v.contiguous() for n, v in sd.items()})
    return "%d views; %s; %s" % (len(views), msg, c.check_forward(tag, out, ref))


def case_vae(c, kind):
    """The VAE from a diffusers directory (.safetensors copied, or .bin only) or an ldm
    .safetensors; checked with dit decode."""
    tag = "vae_" + kind
    p = c.h.path(tag, "dit.pt")
    torch.save(c.m.state_dict(), p)
    out = os.path.dirname(c.h.path(tag, "model", "x"))
    if kind in ("safetensors", "bin"):
        src = c.vae_dir(tag, kind)
        argv = ["--vae-dir", src]
    else:
        src = c.h.path(tag, "vae-ldm.safetensors")
        st.save(export.vae_state(c.vae, "ldm"), src)
        argv = ["--vae-ckpt", src]
    c.convert(tag, ["--dit", p, "--heads", 3, "-o", out] + argv)
    msg = c.check_decode(tag, out, c.vae)
    if kind == "safetensors":
        same = open(os.path.join(src, "diffusion_pytorch_model.safetensors"), "rb").read() == \
            open(os.path.join(out, "vae", "diffusion_pytorch_model.safetensors"), "rb").read()
        if not same:
            raise CheckFailed("the diffusers VAE file was not copied unchanged")
        msg += "; file copied unchanged"
    return msg


def case_diffusers(c):
    """A hub-style snapshot whose transformer is a diffusers-layout .bin with config.json."""
    tag = "diffusers"
    snap = os.path.dirname(c.h.path(tag, "snapshot", "x"))
    tdir = os.path.join(snap, "transformer")
    os.makedirs(tdir)
    torch.save(export.dit_state(c.m, "diffusers"),
               os.path.join(tdir, "diffusion_pytorch_model.bin"))
    cfg = export.dit_config(c.m)
    cfg["_class_name"] = "Transformer2DModel"
    with open(os.path.join(tdir, "config.json"), "w") as f:
        json.dump(cfg, f)
    index = os.path.join(snap, "model_index.json")
    with open(index, "w") as f:
        json.dump({"_class_name": "DiTPipeline",
                   "id2label": {str(i): "label%d" % i for i in range(10)}}, f)
    out = os.path.dirname(c.h.path(tag, "model", "x"))
    c.convert(tag, ["--dit", tdir, "--vae-dir", c.vae_dir(tag, "bin"), "--class-names", index,
                    "-o", out])
    ocfg = json.load(open(os.path.join(out, "transformer", "config.json")))
    if ocfg.get("_class_name") != "Transformer2DModel" or ocfg.get("sample_size") != 8:
        raise CheckFailed("config.json not carried over: %s" % ocfg)
    ours, ref, x = c.forward(tag, out, c.m, DIFFUSERS)
    alt = models.dit_forward(models.with_numerics(c.m, ORIGINAL), x, T, Y)
    return "forward " + compare(ours, ref) + "; " + distinct(ref, alt, what="original numerics")


# hostile and broken files -------------------------------------------------------------------

def _pk_str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _pk_int(i):
    return b"J" + struct.pack("<i", i)


def _pk_tuple(items):
    return b"(" + b"".join(items) + b"t"


def pk_tensor(key, numel, offset, size, stride, storage="FloatStorage"):
    """Opcodes of torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, {})."""
    pid = _pk_tuple([_pk_str("storage"), b"ctorch\n%s\n" % storage.encode(), _pk_str(key),
                     _pk_str("cpu"), _pk_int(numel)]) + b"Q"
    return (b"ctorch._utils\n_rebuild_tensor_v2\n" +
            _pk_tuple([pid, _pk_int(offset), _pk_tuple([_pk_int(s) for s in size]),
                       _pk_tuple([_pk_int(s) for s in stride]), b"\x89", b"}"]) + b"R")


def write_zip(path, pickle_bytes, storages):
    """A torch-style zip: archive/data.pkl, archive/data/<key>, archive/version."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        for k, b in storages.items():
            z.writestr("archive/data/%s" % k, b)
        z.writestr("archive/version", "3\n")
    return path


class Evil:
    """What a malicious checkpoint holds: unpickling it calls os.system."""

    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def case_refuse(c, kind):
    tag = "refuse_" + kind
    marker = c.h.path(tag, "PWNED")
    cmd = "touch %s" % marker
    p = c.h.path(tag, "evil.pt")
    good = pk_tensor("0", 4, 0, (4,), (1,))
    data = {"0": np.arange(4, dtype="<f4").tobytes()}
    expect = None
    if kind == "os.system":
        # a raw pickle naming os.system, as a hand-made zip checkpoint
        body = (b"\x80\x02}(" + _pk_str("w") + good + _pk_str("x") + b"cos\nsystem\n" +
                _pk_tuple([_pk_str(cmd)]) + b"Ru.")
        write_zip(p, body, data)
        expect = "os.system"
    elif kind == "reduce-in-ema":
        # torch.save of a train-style checkpoint with a __reduce__ payload next to real weights
        torch.save({"ema": c.m.state_dict(), "args": Evil(cmd)}, p)
        expect = ".system"           # posix.system on Linux
    elif kind == "legacy":
        torch.save({"w": torch.ones(2), "x": Evil(cmd)}, p, _use_new_zipfile_serialization=False)
        expect = "legacy"
    elif kind == "out-of-bounds":
        body = b"\x80\x02}(" + _pk_str("w") + pk_tensor("0", 4, 2, (3,), (1,)) + b"u."
        write_zip(p, body, data)
        expect = "reaches element 4"
    elif kind == "truncated-storage":
        body = b"\x80\x02}(" + _pk_str("w") + pk_tensor("0", 8, 0, (8,), (1,)) + b"u."
        write_zip(p, body, data)
        expect = "holds 16 bytes"
    elif kind == "build-on-tensor":
        # BUILD with slot state that would move a valid tensor outside its storage
        body = (b"\x80\x02}(" + _pk_str("w") + good + b"N}" + _pk_str("offset") +
                _pk_int(10 ** 6) + b"s\x86bu.")
        write_zip(p, body, data)
        expect = "refused"
    elif kind == "builtins.eval":
        body = (b"\x80\x02}(" + _pk_str("w") + b"cbuiltins\neval\n" +
                _pk_tuple([_pk_str("__import__('os').system(%r)" % cmd)]) + b"Ru.")
        write_zip(p, body, data)
        expect = "builtins.eval"
    out = os.path.dirname(c.h.path(tag, "model", "x"))
    vae = c.vae_dir(tag)
    rc, log = c.convert(tag, ["--dit", p, "--vae-dir", vae, "--heads", 3, "-o", out],
                        expect_ok=False)
    if os.path.exists(marker):
        raise CheckFailed("the payload RAN: %s exists" % marker)
    if rc == 0:
        raise CheckFailed("the converter accepted the file:\n" + log)
    if expect not in log or "Traceback" in log:
        raise CheckFailed("expected a clean error mentioning %r, got:\n%s" % (expect, log.strip()))
    if os.path.exists(os.path.join(out, "transformer")):
        raise CheckFailed("a model directory was written")
    return "refused: " + log.strip().splitlines()[-1][:150]


def case_reader_byteorder(c):
    """The reader itself: a big-endian archive (<prefix>/byteorder = "big") with two tensors in
    one storage, one of them a strided view, read back as little-endian values."""
    sys.path.insert(0, os.path.dirname(CONVERTER))
    import ptload
    vals = (np.arange(12) * 0.5 - 2).astype(">f4")
    body = (b"\x80\x02}(" + _pk_str("a") + pk_tensor("0", 12, 0, (3, 2), (1, 3)) +
            _pk_str("b") + pk_tensor("0", 12, 6, (6,), (1,)) + b"u.")
    p = write_zip(c.h.path("byteorder", "be.pt"), body, {"0": vals.tobytes()})
    with zipfile.ZipFile(p, "a") as z:
        z.writestr("archive/byteorder", "big")
    got = ptload.load(p)
    le = vals.astype("<f4")
    want = {"a": np.lib.stride_tricks.as_strided(le, (3, 2), (4, 12)), "b": le[6:]}
    for k, w in want.items():
        a = got[k].numpy()
        if a.dtype != np.dtype("<f4") or not np.array_equal(a, w):
            raise CheckFailed("%s: read %s %s, expected %s" % (k, a.dtype, a.tolist(), w.tolist()))
    return "strided view and offset view of one big-endian storage read correctly"


def main():
    h = Harness("convert", __doc__)
    c = Ctx(h)
    h.case("raw state_dict F32 + SD .ckpt VAE", case_raw, c)
    h.case("train.py checkpoint takes ema", case_train, c, "ema")
    h.case("train.py checkpoint --weights model", case_train, c, "model")
    h.case("BF16 state dict -> F32", case_half, c, "BF16", None)
    h.case("BF16 state dict --dtype keep", case_half, c, "BF16", "keep")
    h.case("F16 state dict --dtype keep", case_half, c, "F16", "keep")
    h.case("F32 -> --dtype bf16 bits as torch", case_round, c, "BF16")
    h.case("F32 -> --dtype f16 bits as torch", case_round, c, "F16")
    h.case("non-contiguous views", case_strided, c)
    h.case("vae diffusers dir safetensors", case_vae, c, "safetensors")
    h.case("vae diffusers dir bin only", case_vae, c, "bin")
    h.case("vae ldm safetensors", case_vae, c, "ldm-safetensors")
    h.case("diffusers-layout transformer .bin", case_diffusers, c)
    h.case("reader: big-endian archive", case_reader_byteorder, c)
    for kind in ("os.system", "reduce-in-ema", "builtins.eval", "legacy", "out-of-bounds",
                 "truncated-storage", "build-on-tensor"):
        h.case("refuse " + kind, case_refuse, c, kind)
    h.finish()


if __name__ == "__main__":
    main()
