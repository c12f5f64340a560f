"""Reference KL autoencoder with the Stable Diffusion AutoencoderKL architecture, plain PyTorch.

Parameter names are the diffusers ones (encoder.*, quant_conv, post_quant_conv, decoder.*), so a
state dict saved from this module is a diffusers vae/diffusion_pytorch_model.safetensors.
GroupNorm eps 1e-6, SiLU, single-head mid-block attention with scale 1/sqrt(C), nearest x2
upsampling followed by a 3x3 conv, downsampling by zero-padding (right, bottom) and a stride-2 conv.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

GN_EPS = 1e-6


class ResnetBlock(nn.Module):
    """GN -> SiLU -> conv3x3 -> GN -> SiLU -> conv3x3, plus a 1x1 conv shortcut when in != out."""

    def __init__(self, cin, cout, groups, device=None):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=GN_EPS, device=device)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, device=device)
        self.norm2 = nn.GroupNorm(groups, cout, eps=GN_EPS, device=device)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, device=device)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1, device=device) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H*W pixels (keys group_norm, to_q/k/v, to_out.0)."""

    def __init__(self, c, groups, device=None):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=GN_EPS, device=device)
        self.to_q = nn.Linear(c, c, device=device)
        self.to_k = nn.Linear(c, c, device=device)
        self.to_v = nn.Linear(c, c, device=device)
        self.to_out = nn.ModuleList([nn.Linear(c, c, device=device)])

    def forward(self, x):
        n, c, h, w = x.shape
        t = self.group_norm(x).reshape(n, c, h * w).transpose(1, 2)       # (n, hw, c)
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        a = torch.softmax((q @ k.transpose(1, 2)) * c ** -0.5, dim=-1)
        o = self.to_out[0](a @ v)
        return x + o.transpose(1, 2).reshape(n, c, h, w)


class MidBlock(nn.Module):
    def __init__(self, c, groups, attention=True, device=None):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(c, c, groups, device=device),
                                      ResnetBlock(c, c, groups, device=device)])
        self.attentions = nn.ModuleList([AttnBlock(c, groups, device=device)] if attention else [])

    def forward(self, x):
        x = self.resnets[0](x)
        for a in self.attentions:
            x = a(x)
        return self.resnets[1](x)


class Downsample(nn.Module):
    def __init__(self, c, device=None):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0, device=device)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c, device=None):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, device=device)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    def __init__(self, cin, cout, layers, groups, downsample, device=None):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(cin if i == 0 else cout, cout, groups,
                                                  device=device) for i in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample(cout, device=device)] if downsample else [])

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        for d in self.downsamplers:
            x = d(x)
        return x


class UpBlock(nn.Module):
    def __init__(self, cin, cout, layers, groups, upsample, device=None):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(cin if i == 0 else cout, cout, groups,
                                                  device=device) for i in range(layers)])
        self.upsamplers = nn.ModuleList([Upsample(cout, device=device)] if upsample else [])

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        for u in self.upsamplers:
            x = u(x)
        return x


class Encoder(nn.Module):
    def __init__(self, in_channels, latent_channels, block_out_channels, layers_per_block, groups,
                 mid_attention=True, device=None):
        super().__init__()
        boc = list(block_out_channels)
        self.conv_in = nn.Conv2d(in_channels, boc[0], 3, padding=1, device=device)
        self.down_blocks = nn.ModuleList()
        prev = boc[0]
        for i, c in enumerate(boc):
            self.down_blocks.append(DownBlock(prev, c, layers_per_block, groups,
                                              downsample=i < len(boc) - 1, device=device))
            prev = c
        self.mid_block = MidBlock(boc[-1], groups, mid_attention, device=device)
        self.conv_norm_out = nn.GroupNorm(groups, boc[-1], eps=GN_EPS, device=device)
        self.conv_out = nn.Conv2d(boc[-1], 2 * latent_channels, 3, padding=1, device=device)

    def forward(self, x):
        x = self.conv_in(x)
        for b in self.down_blocks:
            x = b(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, latent_channels, out_channels, block_out_channels, layers_per_block, groups,
                 mid_attention=True, device=None):
        super().__init__()
        rev = list(reversed(block_out_channels))
        self.conv_in = nn.Conv2d(latent_channels, rev[0], 3, padding=1, device=device)
        self.mid_block = MidBlock(rev[0], groups, mid_attention, device=device)
        self.up_blocks = nn.ModuleList()
        prev = rev[0]
        for i, c in enumerate(rev):
            self.up_blocks.append(UpBlock(prev, c, layers_per_block + 1, groups,
                                          upsample=i < len(rev) - 1, device=device))
            prev = c
        self.conv_norm_out = nn.GroupNorm(groups, rev[-1], eps=GN_EPS, device=device)
        self.conv_out = nn.Conv2d(rev[-1], out_channels, 3, padding=1, device=device)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for b in self.up_blocks:
            x = b(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class DiagonalGaussian:
    """Posterior N(mean, exp(logvar)) from 2*latent_channels moments (logvar clamped to [-30, 20])."""

    def __init__(self, moments):
        self.mean, logvar = moments.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, generator=None):
        eps = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self):
        return self.mean

    def kl(self):
        """KL to N(0, I), summed over C, H, W: one value per sample."""
        return 0.5 * torch.sum(self.mean ** 2 + self.var - 1.0 - self.logvar, dim=[1, 2, 3])


class AutoencoderKL(nn.Module):
    def __init__(self, in_channels=3, out_channels=3, latent_channels=4,
                 block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32,
                 scaling_factor=0.18215, sample_size=256, mid_block_add_attention=True,
                 device=None):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.latent_channels = latent_channels
        self.block_out_channels = list(block_out_channels)
        self.layers_per_block = layers_per_block
        self.norm_num_groups = norm_num_groups
        self.scaling_factor = scaling_factor
        self.sample_size = sample_size
        self.mid_block_add_attention = mid_block_add_attention
        self.extra_config = {}      # e.g. latent_rgb_factors, merged into config_json()
        self.encoder = Encoder(in_channels, latent_channels, block_out_channels, layers_per_block,
                               norm_num_groups, mid_block_add_attention, device=device)
        self.decoder = Decoder(latent_channels, out_channels, block_out_channels, layers_per_block,
                               norm_num_groups, mid_block_add_attention, device=device)
        self.quant_conv = nn.Conv2d(2 * latent_channels, 2 * latent_channels, 1, device=device)
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1, device=device)

    def encode(self, x):
        """Image (N, in_channels, H, W) in [-1, 1] -> DiagonalGaussian posterior (unscaled)."""
        return DiagonalGaussian(self.quant_conv(self.encoder(x)))

    def decode(self, z):
        """z = latents / scaling_factor (diffusers semantics) -> image, roughly [-1, 1]."""
        return self.decoder(self.post_quant_conv(z))

    def forward(self, x, sample=True, generator=None):
        post = self.encode(x)
        z = post.sample(generator) if sample else post.mode()
        return self.decode(z), post

    def config_json(self):
        n = len(self.block_out_channels)
        cfg = {
            "_class_name": "AutoencoderKL",
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "latent_channels": self.latent_channels,
            "block_out_channels": self.block_out_channels,
            "layers_per_block": self.layers_per_block,
            "norm_num_groups": self.norm_num_groups,
            "act_fn": "silu",
            "down_block_types": ["DownEncoderBlock2D"] * n,
            "up_block_types": ["UpDecoderBlock2D"] * n,
            "mid_block_add_attention": self.mid_block_add_attention,
            "scaling_factor": self.scaling_factor,
            "sample_size": self.sample_size,
        }
        cfg.update(self.extra_config)
        return cfg


def from_config(cfg, **kw):
    m = AutoencoderKL(in_channels=cfg.get("in_channels", 3),
                      out_channels=cfg.get("out_channels", 3),
                      latent_channels=cfg.get("latent_channels", 4),
                      block_out_channels=cfg.get("block_out_channels", (128, 256, 512, 512)),
                      layers_per_block=cfg.get("layers_per_block", 2),
                      norm_num_groups=cfg.get("norm_num_groups", 32),
                      scaling_factor=cfg.get("scaling_factor", 0.18215),
                      sample_size=cfg.get("sample_size", 256),
                      mid_block_add_attention=cfg.get("mid_block_add_attention", True), **kw)
    for k in ("latent_rgb_factors", "latent_rgb_bias"):
        if k in cfg:
            m.extra_config[k] = cfg[k]
    return m
