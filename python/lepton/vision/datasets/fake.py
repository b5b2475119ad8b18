"""FakeData: torchvision's dataset of random images, for trying a pipeline without data."""

import lepton
from lepton.vision.datasets.vision import VisionDataset
from lepton.vision.transforms import functional as TF

__all__ = ["FakeData"]


class FakeData(VisionDataset):
    """`size` random PIL images of `image_size` (C, H, W) with random labels below num_classes.
    Item i is the same on every access (its own generator, seeded i + random_offset) and draws
    leave the global random stream untouched, as in torchvision."""

    def __init__(self, size=1000, image_size=(3, 224, 224), num_classes=10, transform=None, target_transform=None,
                 random_offset=0):
        super().__init__(None, transform=transform, target_transform=target_transform)
        if int(size) != size or size < 0:
            raise ValueError(f"FakeData: size must be a non-negative integer, got {size!r}")
        if len(image_size) != 3 or image_size[0] not in (1, 3, 4):
            raise ValueError(f"FakeData: image_size must be (channels 1, 3 or 4, height, width), got {image_size!r}")
        self.size, self.num_classes = int(size), num_classes
        self.image_size, self.random_offset = tuple(image_size), random_offset

    def __getitem__(self, index):
        if not -self.size <= index < self.size:
            raise IndexError(f"FakeData index {index} out of range for {self.size} images")
        g = lepton.Generator().manual_seed(index % self.size + self.random_offset)
        img = lepton.rand(self.image_size, generator=g)  # in [0, 1): a valid 8-bit image after scaling
        target = int(lepton.randint(0, self.num_classes, (1,), generator=g).item())
        img = TF.to_pil_image(img)
        return (img, target) if self.transforms is None else self.transforms(img, target)

    def __len__(self):
        return self.size
