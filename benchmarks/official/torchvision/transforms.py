"""``Compose``, ``ToTensor`` and ``Normalize`` with torchvision's semantics for the
(H, W) uint8 arrays of the stand-in MNIST."""
import torch


class Compose:
    def __init__(self, fns):
        self.fns = fns

    def __call__(self, x):
        for fn in self.fns:
            x = fn(x)
        return x


class ToTensor:
    def __call__(self, x):
        t = torch.from_numpy(x.copy()).float().div(255)
        return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)


class Normalize:
    def __init__(self, mean, std):
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __call__(self, x):
        return (x - self.mean) / self.std
