"""NIQE with the parameters the install step made (BasicSR's pristine statistics, checked against their pinned
SHA-256): a sharp photograph scores better (lower) than its blurred and its noised copies, and nothing is downloaded."""
import torch, torch.nn.functional as F
import torchvision.transforms.functional as TF
from skimage import data
from onestepsr.metrics import SHARE_DIR, Metric, build_metric


def _photo(side:int=256)->torch.Tensor:
    "scikit-image's astronaut (512 x 512), resized to `side` (NIQE works on 96 px blocks: 256 px gives 2 x 2)."
    x = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(x, size=side, mode='bicubic', antialias=True).clamp(0, 1)


def test_niqe_prefers_the_sharp_photo(tmp_path):
    m = build_metric('niqe', hub_dir=str(tmp_path/'empty-hub'))   # no pyiqa cache: only the installed file
    assert isinstance(m, Metric), f"{m} (run `make install`: it writes {SHARE_DIR}/niqe_modelparameters.mat)"
    sharp = _photo()
    blurred = TF.gaussian_blur(sharp, kernel_size=9, sigma=2.0)
    noised = (sharp + 0.1 * torch.randn(sharp.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    s = m(torch.cat([sharp, blurred, noised])).tolist()
    print('NIQE sharp / blurred / noised:', [round(v, 3) for v in s])
    assert s[0] < s[1] and s[0] < s[2], s
    assert not (tmp_path/'empty-hub').exists()                        # nothing fetched into a cache
