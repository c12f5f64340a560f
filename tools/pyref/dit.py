"""Reference Diffusion Transformer (Peebles & Xie) in plain PyTorch, float32.

Parameter names follow the original facebookresearch/DiT checkpoints (x_embedder.proj, pos_embed,
t_embedder.mlp.{0,2}, y_embedder.embedding_table, blocks.N.*, final_layer.*). Besides the reference
adaLN-Zero block, the three other block designs of the paper are available with the key names of
docs/models.md. Numerics options:
  t_divisor     128 (original) or 127 (diffusers) in the timestep frequencies
  mlp_norm_eps  eps of the LayerNorm in front of the MLP (1e-6 original, 1e-5 diffusers)
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BLOCKS = ("adaln_zero", "adaln", "cross_attention", "in_context")


# ----------------------------------------------------------------------------------------------
# Embeddings

def sincos_pos_embed(dim, grid):
    """2-D sin-cos position embedding, (grid*grid, dim) float32, computed in float64.

    Token n = i*grid + j (i row, j column). Channels [0, dim/2) encode the column j,
    channels [dim/2, dim) the row i; each half is [sin(pos*w_k) | cos(pos*w_k)],
    w_k = 10000^(-k/(dim/4)), k = 0..dim/4-1.
    """
    assert dim % 4 == 0
    q = dim // 4
    omega = 1.0 / 10000 ** (np.arange(q, dtype=np.float64) / q)
    idx = np.arange(grid, dtype=np.float32)
    col = np.tile(idx, grid)          # j for token n
    row = np.repeat(idx, grid)        # i for token n

    def half(pos):
        a = np.outer(pos.astype(np.float64), omega)
        return np.concatenate([np.sin(a), np.cos(a)], axis=1)

    return np.concatenate([half(col), half(row)], axis=1).astype(np.float32)


def timestep_embedding(t, dim=256, divisor=None):
    """[cos | sin] embedding of integer timesteps t (N,), frequencies exp(-ln(1e4)*k/divisor)."""
    half = dim // 2
    if divisor is None:
        divisor = half
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / divisor)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """Sinusoidal embedding of t followed by Linear -> SiLU -> Linear (keys mlp.0, mlp.2)."""

    def __init__(self, hidden, freq_dim=256, divisor=128, device=None):
        super().__init__()
        self.freq_dim = freq_dim
        self.divisor = divisor
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden, device=device), nn.SiLU(),
                                 nn.Linear(hidden, hidden, device=device))

    def forward(self, t):
        return self.mlp(timestep_embedding(t, self.freq_dim, self.divisor))


class LabelEmbedder(nn.Module):
    """Class embedding table with an extra row (index num_classes) for the null class.

    In training mode labels are replaced by the null class with probability dropout_prob."""

    def __init__(self, num_classes, hidden, dropout_prob=0.1, device=None):
        super().__init__()
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob
        self.embedding_table = nn.Embedding(num_classes + 1, hidden, device=device)

    def forward(self, y):
        if self.training and self.dropout_prob > 0:
            drop = torch.rand(y.shape[0], device=y.device) < self.dropout_prob
            y = torch.where(drop, torch.full_like(y, self.num_classes), y)
        return self.embedding_table(y)


# ----------------------------------------------------------------------------------------------
# Transformer pieces

def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


class Attention(nn.Module):
    """Multi-head self-attention, fused qkv weight laid out [q | k | v], heads contiguous."""

    def __init__(self, hidden, heads, device=None):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden, device=device)
        self.proj = nn.Linear(hidden, hidden, device=device)

    def forward(self, x):
        n, t, d = x.shape
        hd = d // self.heads
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                       # (n, heads, t, hd)
        w = torch.softmax((q @ k.transpose(-2, -1)) * hd ** -0.5, dim=-1)
        return self.proj((w @ v).transpose(1, 2).reshape(n, t, d))


class CrossAttention(nn.Module):
    """Tokens attend to the condition tokens: q (D->D), kv (D->2D, rows [k | v]), proj (D->D)."""

    def __init__(self, hidden, heads, device=None):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(hidden, hidden, device=device)
        self.kv = nn.Linear(hidden, 2 * hidden, device=device)
        self.proj = nn.Linear(hidden, hidden, device=device)

    def forward(self, x, cond):
        n, t, d = x.shape
        m = cond.shape[1]
        hd = d // self.heads
        q = self.q(x).reshape(n, t, self.heads, hd).transpose(1, 2)
        kv = self.kv(cond).reshape(n, m, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        w = torch.softmax((q @ k.transpose(-2, -1)) * hd ** -0.5, dim=-1)
        return self.proj((w @ v).transpose(1, 2).reshape(n, t, d))


class Mlp(nn.Module):
    def __init__(self, hidden, mlp_hidden, device=None):
        super().__init__()
        self.fc1 = nn.Linear(hidden, mlp_hidden, device=device)
        self.fc2 = nn.Linear(mlp_hidden, hidden, device=device)

    def forward(self, x):
        return self.fc2(gelu_tanh(self.fc1(x)))


class DiTBlock(nn.Module):
    """One transformer block in one of the four conditioning designs.

    forward(x, c, cond_tokens): c = t_emb + y_emb (N, D); cond_tokens = [t_emb; y_emb] (N, 2, D).
    """

    def __init__(self, hidden, heads, mlp_ratio=4.0, block="adaln_zero", mlp_norm_eps=1e-6,
                 device=None):
        super().__init__()
        assert block in BLOCKS, block
        self.block = block
        mlp_hidden = int(hidden * mlp_ratio)
        self.attn = Attention(hidden, heads, device=device)
        self.mlp = Mlp(hidden, mlp_hidden, device=device)
        if block in ("adaln_zero", "adaln"):
            # parameter-free LayerNorms, the modulation comes from c
            self.norm1 = nn.LayerNorm(hidden, eps=1e-6, elementwise_affine=False)
            self.norm2 = nn.LayerNorm(hidden, eps=mlp_norm_eps, elementwise_affine=False)
            chunks = 6 if block == "adaln_zero" else 4
            self.adaLN_modulation = nn.Sequential(
                nn.SiLU(), nn.Linear(hidden, chunks * hidden, device=device))
        elif block == "cross_attention":
            self.norm1 = nn.LayerNorm(hidden, eps=1e-6, device=device)
            self.norm2 = nn.LayerNorm(hidden, eps=1e-6, device=device)
            self.norm3 = nn.LayerNorm(hidden, eps=mlp_norm_eps, device=device)
            self.cross_attn = CrossAttention(hidden, heads, device=device)
        else:  # in_context
            self.norm1 = nn.LayerNorm(hidden, eps=1e-6, device=device)
            self.norm2 = nn.LayerNorm(hidden, eps=mlp_norm_eps, device=device)

    def forward(self, x, c, cond_tokens):
        if self.block == "adaln_zero":
            (shift_msa, scale_msa, gate_msa,
             shift_mlp, scale_mlp, gate_mlp) = self.adaLN_modulation(c).chunk(6, dim=1)
            x = x + gate_msa[:, None] * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
            x = x + gate_mlp[:, None] * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        elif self.block == "adaln":
            shift_msa, scale_msa, shift_mlp, scale_mlp = self.adaLN_modulation(c).chunk(4, dim=1)
            x = x + self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
            x = x + self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        elif self.block == "cross_attention":
            x = x + self.attn(self.norm1(x))
            x = x + self.cross_attn(self.norm2(x), cond_tokens)
            x = x + self.mlp(self.norm3(x))
        else:
            x = x + self.attn(self.norm1(x))
            x = x + self.mlp(self.norm2(x))
        return x


class FinalLayer(nn.Module):
    """adaLN (shift, then scale) from c, then Linear D -> p*p*out_channels."""

    def __init__(self, hidden, patch, out_channels, device=None):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, eps=1e-6, elementwise_affine=False)
        self.linear = nn.Linear(hidden, patch * patch * out_channels, device=device)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(),
                                              nn.Linear(hidden, 2 * hidden, device=device))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class PatchEmbed(nn.Module):
    """Conv p x p stride p, then flatten row-major to tokens (key x_embedder.proj)."""

    def __init__(self, patch, in_channels, hidden, device=None):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden, patch, stride=patch, device=device)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


# ----------------------------------------------------------------------------------------------

class DiT(nn.Module):
    def __init__(self, input_size=32, patch_size=2, in_channels=4, hidden_size=1152, depth=28,
                 num_heads=16, mlp_ratio=4.0, class_dropout_prob=0.1, num_classes=1000,
                 learn_sigma=True, block="adaln_zero", t_divisor=128, mlp_norm_eps=1e-6,
                 device=None):
        super().__init__()
        assert block in BLOCKS, block
        assert input_size % patch_size == 0 and hidden_size % num_heads == 0
        self.input_size = input_size
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.hidden_size = hidden_size
        self.depth = depth
        self.num_heads = num_heads
        self.num_classes = num_classes
        self.learn_sigma = learn_sigma
        self.block = block
        self.t_divisor = t_divisor
        self.mlp_norm_eps = mlp_norm_eps
        self.grid = input_size // patch_size

        self.x_embedder = PatchEmbed(patch_size, in_channels, hidden_size, device=device)
        self.t_embedder = TimestepEmbedder(hidden_size, divisor=t_divisor, device=device)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob,
                                        device=device)
        # fixed sin-cos table; a parameter without gradient so it is part of the state dict
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid ** 2, hidden_size, device=device),
                                      requires_grad=False)
        self.blocks = nn.ModuleList([
            DiTBlock(hidden_size, num_heads, mlp_ratio, block, mlp_norm_eps, device=device)
            for _ in range(depth)])
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels, device=device)
        if device is None or torch.device(device).type != "meta":
            self.initialize_weights()

    def initialize_weights(self):
        # the paper's (ViT-style) initialisation
        def xavier(m):
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.apply(xavier)
        pe = sincos_pos_embed(self.hidden_size, self.grid)
        self.pos_embed.data.copy_(torch.from_numpy(pe)[None])
        w = self.x_embedder.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        # adaLN-Zero: each block starts as the identity (zero gates); with plain adaLN the zero
        # modulation gives scale 1, shift 0.
        for blk in self.blocks:
            if hasattr(blk, "adaLN_modulation"):
                nn.init.zeros_(blk.adaLN_modulation[-1].weight)
                nn.init.zeros_(blk.adaLN_modulation[-1].bias)
        # zero output layer: the untrained model predicts 0
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def unpatchify(self, x):
        """(N, T, p*p*C) with the token vector ordered (py, px, c) -> (N, C, H, W)."""
        p, g, c = self.patch_size, self.grid, self.out_channels
        x = x.reshape(x.shape[0], g, g, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, g * p, g * p)

    def forward(self, x, t, y):
        """x (N, C, H, W) latents, t (N,) original integer timesteps, y (N,) labels
        (num_classes = null). Returns (N, out_channels, H, W): eps, then the variance values."""
        h = self.x_embedder(x) + self.pos_embed
        t_emb = self.t_embedder(t)
        y_emb = self.y_embedder(y)
        c = t_emb + y_emb
        cond_tokens = torch.stack([t_emb, y_emb], dim=1)
        if self.block == "in_context":
            h = torch.cat([cond_tokens, h], dim=1)
        for blk in self.blocks:
            h = blk(h, c, cond_tokens)
        if self.block == "in_context":
            h = h[:, 2:]
        return self.unpatchify(self.final_layer(h, c))

    def forward_with_cfg(self, x, t, y, cfg_scale, guidance_channels=3):
        """Classifier-free guidance on a doubled batch: rows [0, N/2) conditional, [N/2, N) null.

        Only the first half of x is used (duplicated). The first guidance_channels eps channels
        get eps_u + s*(eps_c - eps_u) in both halves; the other channels keep each half's own
        output (so the conditional half carries the conditional values)."""
        half = x[: len(x) // 2]
        out = self.forward(torch.cat([half, half], dim=0), t, y)
        g, rest = out[:, :guidance_channels], out[:, guidance_channels:]
        cond, uncond = torch.split(g, len(g) // 2, dim=0)
        guided = uncond + cfg_scale * (cond - uncond)
        return torch.cat([torch.cat([guided, guided], dim=0), rest], dim=1)

    def config_json(self):
        """diffusers-style transformer/config.json for this model."""
        cfg = {
            "_class_name": "DiTTransformer2DModel",
            "sample_size": self.input_size,
            "patch_size": self.patch_size,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "num_layers": self.depth,
            "num_attention_heads": self.num_heads,
            "attention_head_dim": self.hidden_size // self.num_heads,
            "num_embeds_ada_norm": self.num_classes,
            "attention_bias": True,
            "activation_fn": "gelu-approximate",
            "norm_type": "ada_norm_zero",
            "norm_elementwise_affine": False,
        }
        if self.block != "adaln_zero":
            cfg["ditd_block"] = self.block
        if self.t_divisor != 128 or self.mlp_norm_eps != 1e-6:
            cfg["ditd_numerics"] = "diffusers"
            cfg["norm_eps"] = self.mlp_norm_eps
        return cfg


def from_config(cfg, **kw):
    """Build a DiT from a transformer/config.json dict (original key layout)."""
    numerics = cfg.get("ditd_numerics", "original")
    return DiT(input_size=cfg["sample_size"], patch_size=cfg["patch_size"],
               in_channels=cfg["in_channels"],
               hidden_size=cfg["num_attention_heads"] * cfg["attention_head_dim"],
               depth=cfg["num_layers"], num_heads=cfg["num_attention_heads"],
               num_classes=cfg["num_embeds_ada_norm"],
               learn_sigma=cfg["out_channels"] == 2 * cfg["in_channels"],
               block=cfg.get("ditd_block", "adaln_zero"),
               t_divisor=127 if numerics == "diffusers" else 128,
               mlp_norm_eps=cfg.get("norm_eps", 1e-5) if numerics == "diffusers" else 1e-6,
               **kw)
