"""What reslab knows about each dataset: shape, classes, files, checksums, where to get it.

Checksums are the publishers' (the same values torchvision verifies).  IDX files also
carry the MD5 of their *decompressed* payload, so a copy that was re-gzipped (the Debian
package ``dataset-fashion-mnist`` re-compresses the upstream files, which changes their
MD5 but not a byte of the data) or gunzipped by hand can still be verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reslab.errors import ReslabError

SPLITS = ("train", "test")


@dataclass(frozen=True)
class FileSpec:
    """One published file: its name, the MD5 of the published bytes, for gzipped IDX
    files the MD5 of the decompressed payload, and its size in bytes."""

    name: str
    md5: str
    content_md5: str | None = None
    size: int | None = None  # bytes of the published file: a download never takes more


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset; see :data:`DATASETS`.

    ``mean``/``std`` are per-channel pixel statistics of the full official training set
    in [0, 1] units (reference values; a loader for a train/val split should use
    :func:`reslab.data.channel_stats` of its own training images).
    """

    name: str
    num_classes: int
    shape: tuple[int, int, int]  # (C, H, W)
    class_names: tuple[str, ...]
    num_train: int
    num_test: int
    default_val_size: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    format: str  # "idx", "cifar" or "synthetic"
    description: str = ""
    citation: str = ""
    # Files as published; downloads fetch base_url + name and check md5.
    base_url: str | None = None
    downloads: tuple[FileSpec, ...] = ()
    # split -> names of the files (IDX: images then labels, without .gz) or archive
    # members (CIFAR: batch names inside `folder`) that hold it.
    split_files: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # CIFAR: folder inside the archive / on disk, label key, member MD5s.
    folder: str | None = None
    label_key: str | None = None
    member_md5: dict[str, str] = field(default_factory=dict)
    # Folder names (besides `name`) under a data root that may hold the files;
    # "FashionMNIST/raw" etc. are torchvision's layout.
    aliases: tuple[str, ...] = ()
    system_dirs: tuple[str, ...] = ()
    provider: str = ""  # one phrase: where a user gets the files

    @property
    def num_channels(self) -> int:
        return self.shape[0]


_FMNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_IDX_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# CIFAR-100 fine labels, in label order (the `fine_label_names` of the archive's `meta`).
CIFAR100_CLASSES = tuple("""
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly
camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup
dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower
leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid
otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road
rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower
sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale
willow_tree wolf woman worm
""".split())
assert len(CIFAR100_CLASSES) == 100

DATASETS: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist", num_classes=10, shape=(1, 28, 28),
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        num_train=60000, num_test=10000, default_val_size=5000,
        # Measured on the official training set (60k images).
        mean=(0.2860,), std=(0.3530,), format="idx",
        description="Zalando article images, 28x28 greyscale, 10 classes",
        citation="Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747",
        base_url=_FMNIST_URL,
        downloads=(
            FileSpec("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "f4a8712d7a061bf5bd6d2ca38dc4d50a", size=26421880),
            FileSpec("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", "9018921c3c673c538a1fc5bad174d6f9", size=29515),
            FileSpec("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", "8181f5470baa50b63fa0f6fddb340f0a", size=4422102),
            FileSpec("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", "15d484375f8d13e6eb1aabb0c3f46965", size=5148),
        ),
        split_files=_IDX_SPLITS, aliases=("fashion_mnist", "FashionMNIST/raw"),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        provider=f"the Debian package dataset-fashion-mnist or {_FMNIST_URL}",
    ),
    "mnist": DatasetInfo(
        name="mnist", num_classes=10, shape=(1, 28, 28), class_names=tuple("0123456789"),
        num_train=60000, num_test=10000, default_val_size=5000,
        mean=(0.1307,), std=(0.3081,), format="idx",
        description="handwritten digits, 28x28 greyscale, 10 classes",
        citation="LeCun, Bottou, Bengio & Haffner 1998",
        base_url=_MNIST_URL,
        downloads=(
            FileSpec("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb", size=9912422),
            FileSpec("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624", size=28881),
            FileSpec("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea", size=1648877),
            FileSpec("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637", size=4542),
        ),
        split_files=_IDX_SPLITS, aliases=("MNIST/raw",),
        system_dirs=("/usr/share/datasets/mnist",),
        provider=_MNIST_URL,
    ),
    "cifar10": DatasetInfo(
        name="cifar10", num_classes=10, shape=(3, 32, 32), class_names=CIFAR10_CLASSES,
        # He et al. 2016 §4.2: 45k/5k train/val split of the 50k training images.
        num_train=50000, num_test=10000, default_val_size=5000,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), format="cifar",
        description="32x32 colour images, 10 classes",
        citation="Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images",
        base_url="https://www.cs.toronto.edu/~kriz/",
        downloads=(FileSpec("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", size=170498071),),
        split_files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        folder="cifar-10-batches-py", label_key="labels",
        member_md5={
            "data_batch_1": "c99cafc152244af753f735de768cd75f",
            "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
            "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
            "test_batch": "40351d587109b95175f43aff81a1287e",
        },
        aliases=("cifar-10",), provider="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ),
    "cifar100": DatasetInfo(
        name="cifar100", num_classes=100, shape=(3, 32, 32), class_names=CIFAR100_CLASSES,
        num_train=50000, num_test=10000, default_val_size=5000,
        mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762), format="cifar",
        description="32x32 colour images, 100 fine classes",
        citation="Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images",
        base_url="https://www.cs.toronto.edu/~kriz/",
        downloads=(FileSpec("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", size=169001437),),
        split_files={"train": ("train",), "test": ("test",)},
        folder="cifar-100-python", label_key="fine_labels",
        member_md5={"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"},
        aliases=("cifar-100",), provider="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    ),
    "synthetic": DatasetInfo(
        name="synthetic", num_classes=10, shape=(3, 32, 32), class_names=tuple(f"class{i}" for i in range(10)),
        # Generated, so the defaults are chosen for speed; load_arrays can change them.
        num_train=10000, num_test=2000, default_val_size=1000,
        mean=None, std=None, format="synthetic",
        description="generated class prototypes plus noise (needs no files; for smoke tests)",
    ),
}

_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar_10": "cifar10", "cifar-100": "cifar100", "cifar_100": "cifar100"}


def get_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` for ``name`` (case-insensitive; ``cifar-10`` etc. accepted).

    Raises ReslabError listing the valid names for an unknown one.
    """
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ReslabError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return DATASETS[key]


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ReslabError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return split
