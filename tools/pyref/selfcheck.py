"""Self-check of the reference package: parameter counts of docs/dit-model.md section 1 and 5.5,
safetensors round trip, a few numeric invariants. Run: /usr/bin/python3 tools/pyref/selfcheck.py"""
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pyref import st  # noqa: E402
from pyref.dit import DiT, BLOCKS, sincos_pos_embed, timestep_embedding  # noqa: E402
from pyref.vae import AutoencoderKL  # noqa: E402

META = "meta"


def count(m):
    return sum(p.numel() for p in m.parameters())


def check_dit_counts():
    configs = {  # name: (depth, hidden, heads, patch, input_size, expected)
        "XL/2": (28, 1152, 16, 2, 32, 675_129_632),
        "XL/8": (28, 1152, 16, 8, 32, 675_683_072),
        "S/8": (12, 384, 6, 8, 32, 33_148_160),
        "S/2": (12, 384, 6, 2, 32, 32_963_360),
        "B/4": (12, 768, 12, 4, 32, 130_475_648),
        "XL/2-512": (28, 1152, 16, 2, 64, 676_014_368),
    }
    for name, (depth, d, h, p, size, expected) in configs.items():
        m = DiT(input_size=size, patch_size=p, hidden_size=d, depth=depth, num_heads=h,
                device=META)
        n = count(m)
        assert n == expected, (name, n, expected)
        print(f"DiT-{name}: {n:,} params ok")
    m = DiT(input_size=32, patch_size=2, hidden_size=1152, depth=28, num_heads=16, device=META)
    assert len(m.state_dict()) == 292, len(m.state_dict())
    print("DiT-XL/2: 292 state-dict tensors ok")


def check_vae_counts():
    v = AutoencoderKL(device=META)
    n_dec = count(v.decoder) + count(v.post_quant_conv)
    assert n_dec == 49_490_199, n_dec
    assert count(v) == 83_653_863, count(v)
    dec_keys = [k for k in v.state_dict() if k.startswith(("decoder.", "post_quant_conv."))]
    assert len(dec_keys) == 140, len(dec_keys)
    print(f"sd-vae decoder+post_quant_conv: {n_dec:,} params, 140 tensors ok; "
          f"full: {count(v):,} ok")


def check_numerics():
    pe = sincos_pos_embed(16, 4)
    assert torch.allclose(torch.from_numpy(pe[0]),
                          torch.tensor([0.] * 4 + [1.] * 4 + [0.] * 4 + [1.] * 4))
    # token 1 = row 0, column 1: first half varies, second half is the row-0 pattern
    assert abs(pe[1, 0] - torch.sin(torch.tensor(1.0)).item()) < 1e-6
    assert (pe[1, 8:] == pe[0, 8:]).all()
    e = timestep_embedding(torch.tensor([0]))
    assert (e[0, :128] == 1).all() and (e[0, 128:] == 0).all()
    torch.manual_seed(0)
    for block in BLOCKS:
        m = DiT(input_size=8, patch_size=2, in_channels=4, hidden_size=64, depth=2, num_heads=4,
                num_classes=10, block=block).eval()
        x = torch.randn(4, 4, 8, 8)
        t = torch.tensor([0, 10, 500, 999])
        y = torch.tensor([0, 3, 9, 10])
        out = m(x, t, y)
        assert out.shape == (4, 8, 8, 8)
        assert (out == 0).all()          # zero-initialised final layer
        for p in m.final_layer.parameters():
            torch.nn.init.normal_(p, std=0.1)
        out = m.forward_with_cfg(x, t, y, 4.0, 3)
        assert out.shape == (4, 8, 8, 8)
        assert torch.equal(out[:2, :3], out[2:, :3])
        ref = m(torch.cat([x[:2], x[:2]]), t, y)
        assert torch.allclose(out[:, 3:], ref[:, 3:])
        sd = m.state_dict()
        assert "pos_embed" in sd and sd["pos_embed"].shape == (1, 16, 64)
    print("numerics / block designs ok")


def check_safetensors():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.safetensors")
        ts = {"b": torch.randn(3, 5), "a": torch.randn(7).half(), "c": torch.randn(2, 2).bfloat16(),
              "i": torch.arange(5, dtype=torch.int64), "s": torch.tensor(1.5)}
        st.save(ts, path, metadata={"format": "pt"})
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
        assert n % 8 == 0
        back, meta = st.load(path, with_metadata=True)
        assert meta == {"format": "pt"}
        for k, v in ts.items():
            assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
        v = AutoencoderKL(in_channels=1, out_channels=1, block_out_channels=(16, 32),
                          layers_per_block=1, norm_num_groups=8)
        st.save(v.state_dict(), path)
        v2 = AutoencoderKL(in_channels=1, out_channels=1, block_out_channels=(16, 32),
                           layers_per_block=1, norm_num_groups=8)
        v2.load_state_dict(st.load(path))
        x = torch.randn(2, 1, 8, 8)
        assert torch.equal(v.decode(v.encode(x).mode()), v2.decode(v2.encode(x).mode()))
        assert v.decode(v.encode(x).mode()).shape == (2, 1, 8, 8)
    print("safetensors round trip ok")


if __name__ == "__main__":
    check_dit_counts()
    check_vae_counts()
    check_numerics()
    check_safetensors()
    print("selfcheck passed")
