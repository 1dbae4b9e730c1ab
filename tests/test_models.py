"""Registry-wide model tests: every registered network, forward/backward and embed()."""
import pytest
import torch

from synthset.models import MODELS, build_model

SHAPES = [(1, (28, 28)), (3, (64, 64)), (3, (224, 224))]


def _fits(name, size):
    depth = {f"ConvNetD{d}": d for d in range(1, 8)}
    d = next((v for k, v in depth.items() if name.startswith(k)), 3)
    return min(size) // 2 ** d >= 1


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("channels,size", SHAPES)
def test_forward_backward_embed(name, channels, size):
    if not _fits(name, size):
        with pytest.raises(ValueError, match="pools"):
            build_model(name, channels, 10, size)
        return
    net = build_model(name, channels, 10, size)
    x = torch.randn(2, channels, *size, requires_grad=True)
    y = net(x)
    assert y.shape == (2, 10)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert net.embed(x).shape[0] == 2
    feats = net.blocks(x)
    assert len(feats) >= 1 and all(f.shape[0] == 2 for f in feats)


def test_convnet_parameter_count_by_hand():
    # MNIST ConvNet: 3 x (conv3x3 + instance-norm affine), linear 128*4*4 -> 10.
    conv1 = 1 * 128 * 9 + 128
    conv23 = 2 * (128 * 128 * 9 + 128)
    norms = 3 * 2 * 128
    fc = 128 * 4 * 4 * 10 + 10
    net = build_model("ConvNet", 1, 10, (28, 28))
    assert sum(p.numel() for p in net.parameters()) == conv1 + conv23 + norms + fc == 317706


def test_generator_makes_init_reproducible():
    a = build_model("ConvNet", 1, 10, (28, 28), generator=torch.Generator().manual_seed(3))
    b = build_model("ConvNet", 1, 10, (28, 28), generator=torch.Generator().manual_seed(3))
    c = build_model("ConvNet", 1, 10, (28, 28), generator=torch.Generator().manual_seed(4))
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_unknown_model_lists_choices():
    with pytest.raises(ValueError, match="unknown model 'Nope'.*ConvNet"):
        build_model("Nope", 1, 10, (28, 28))


@pytest.mark.parametrize("cin,kw", [(1, {"padding": 3}), (3, {"padding": 1}), (3, {"padding": 1, "stride": 2}),
                                    (1, {"padding": 0, "dilation": 2})])
def test_few_channel_conv_is_the_library_convolution(cin, kw):
    """The im2col first layer gives nn.Conv2d's output and weight gradients."""
    from synthset.models.base import FewChannelConv2d
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(cin, 16, 3, **kw)
    few = FewChannelConv2d(cin, 16, 3, **kw)
    few.load_state_dict(ref.state_dict())
    x = torch.randn(4, cin, 28, 28)
    outs = []
    for conv in (ref, few):
        conv.zero_grad()
        y = conv(x)  # an input without gradient: the im2col path
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outs.append((y.detach(), conv.weight.grad.clone(), conv.bias.grad.clone()))
    xg = x.clone().requires_grad_(True)  # an input with gradient: the library convolution
    torch.testing.assert_close(few(xg), ref(xg), atol=0, rtol=0)
    for a, b in zip(*outs):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5 * float(a.abs().max()), rtol=1e-4)  # fp32 sum order


def test_convnet_first_layer_is_few_channel_and_keeps_its_names():
    from synthset.models.base import FewChannelConv2d
    net = build_model("ConvNet", 1, 10, (28, 28), generator=torch.Generator().manual_seed(0))
    assert type(net.features[0][0]) is FewChannelConv2d and type(net.features[1][0]) is torch.nn.Conv2d
    assert "features.0.0.weight" in net.state_dict()
