"""Small random models for the parity tests, built from the PyTorch reference in tools/pyref."""
import copy

import numpy as np
import torch

import common  # noqa: F401  (puts tools/ on sys.path)
from pyref import dit as pdit
from pyref import export
from pyref import vae as pvae

# numerics of the reference: (timestep divisor, pre-MLP LayerNorm eps)
ORIGINAL = (128, 1e-6)
DIFFUSERS = (127, 1e-5)


def build_dit(seed, input_size=16, patch_size=4, in_channels=4, hidden_size=96, depth=3,
              num_heads=3, num_classes=10, learn_sigma=True, block="adaln_zero"):
    """A DiT with random weights of non-trivial scale (gates and output layer non-zero)."""
    torch.manual_seed(seed)
    m = pdit.DiT(input_size=input_size, patch_size=patch_size, in_channels=in_channels,
                 hidden_size=hidden_size, depth=depth, num_heads=num_heads,
                 num_classes=num_classes, learn_sigma=learn_sigma, block=block).eval()
    return export.reinit_(m, seed)


def with_numerics(m, numerics):
    """A copy of DiT `m` (same weights) computing with numerics (t_divisor, mlp_norm_eps)."""
    div, eps = numerics
    r = pdit.DiT(input_size=m.input_size, patch_size=m.patch_size, in_channels=m.in_channels,
                 hidden_size=m.hidden_size, depth=m.depth, num_heads=m.num_heads,
                 num_classes=m.num_classes, learn_sigma=m.learn_sigma, block=m.block,
                 t_divisor=div, mlp_norm_eps=eps).eval()
    r.load_state_dict(m.state_dict())
    return r


def rounded(m, dtype, keep_pos_embed=False):
    """A copy of module `m` whose weights are rounded to dtype ("F16"/"BF16").

    keep_pos_embed: leave the DiT position table exact (a diffusers-layout file does not store
    it, so the engine computes it in float32)."""
    r = export.round_weights_(copy.deepcopy(m), dtype)
    if keep_pos_embed:
        r.pos_embed.data.copy_(m.pos_embed.data)
    return r


def build_vae(seed, latent_channels=4, out_channels=3, block_out_channels=(16, 16),
              layers_per_block=1, norm_num_groups=8, scaling_factor=0.18215,
              mid_block_add_attention=True):
    torch.manual_seed(seed)
    v = pvae.AutoencoderKL(in_channels=3, out_channels=out_channels,
                           latent_channels=latent_channels,
                           block_out_channels=block_out_channels,
                           layers_per_block=layers_per_block, norm_num_groups=norm_num_groups,
                           scaling_factor=scaling_factor,
                           mid_block_add_attention=mid_block_add_attention).eval()
    return export.reinit_(v, seed + 1000)


@torch.no_grad()
def dit_forward(m, x, t, y):
    return m(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
             torch.as_tensor(np.asarray(t), dtype=torch.int64),
             torch.as_tensor(np.asarray(y), dtype=torch.int64)).numpy()


@torch.no_grad()
def vae_decode(v, latents):
    """Raw decoder output for latents BEFORE the 1/scaling_factor division."""
    z = torch.from_numpy(np.ascontiguousarray(latents, dtype=np.float32)) / v.scaling_factor
    return v.decode(z).numpy()


def model_fn(m):
    """The reference DiT as a diffusion.sample model function."""
    return lambda x, t, y: dit_forward(m, x, t, y)
