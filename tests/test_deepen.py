"""He et al.'s constructed solution: plain-20 plus identity layers computes plain-20's function."""

import pytest
import torch

from reslab.errors import ReslabError
from reslab.models import create_model
from reslab.models.deepen import deepen_plain
from reslab.models.resnet import weighted_layers


def _trained_plain(depth, seed=0):
    torch.manual_seed(seed)
    m = create_model(f"cifar-plain{depth}", num_classes=10, in_channels=1, width=0.25)
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    for _ in range(5):  # BN statistics and weights away from their init
        x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step(), opt.zero_grad()
    return m.eval()


@pytest.mark.usefixtures("one_thread")
def test_deepened_plain_net_computes_the_shallow_function():
    shallow = _trained_plain(20)
    deep = deepen_plain(shallow, 56).eval()
    assert weighted_layers(shallow) == 20 and weighted_layers(deep) == 56
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        a, b = shallow(x), deep(x)
    assert torch.allclose(a, b, atol=1e-5 * a.abs().max().item())
    # the shallow net's own layers are copied, not shared
    assert deep.stem.conv.weight.data_ptr() != shallow.stem.conv.weight.data_ptr()


@pytest.mark.usefixtures("one_thread")
def test_deepened_net_is_not_the_shallow_net_in_train_mode():
    """The construction is exact with BN's running statistics; train-mode BN uses the batch's."""
    shallow = _trained_plain(8)
    deep = deepen_plain(shallow, 14).train()
    x = torch.randn(8, 1, 28, 28) * 3 + 1
    with torch.no_grad():
        assert not torch.allclose(shallow.eval()(x), deep(x), atol=1e-4)


def test_deepen_refuses_what_it_cannot_build():
    with pytest.raises(ReslabError, match="plain CIFAR"):
        deepen_plain(create_model("resnet20"), 56)
    with pytest.raises(ReslabError, match="depth"):
        deepen_plain(create_model("plain56"), 20)
    with pytest.raises(ReslabError, match="CReLU"):
        deepen_plain(create_model("plain20", init="looks-linear"), 56)
