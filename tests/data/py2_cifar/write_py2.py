"""Writes the files beside it with Python 2's cPickle and numpy 1.x (not run by the tests).

    python2.7 write_py2.py      # with numpy 1.16.6 importable (the last numpy for Python 2)

The objects mirror tests/datafiles.py's CIFAR batches, small.  Every dict value is held by
a variable too, so that Python 2.7's cPickle memoizes it as Python <= 2.6 (which wrote the
published batches in 2009) memoized every dict key and value.  test_cifar_real_format.py
checks that tests/datafiles.py's hand-assembled writer gives these bytes exactly.
"""
import os
import sys
import cPickle

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def pattern(n, seed):
    return ((np.arange(n * 3072) * 7 + seed) % 256).astype(np.uint8).reshape(n, 3072)


def dump(name, obj):
    with open(os.path.join(HERE, name), "wb") as f:
        cPickle.dump(obj, f, 2)
    sys.stdout.write("%s %r\n" % (name, list(obj.keys())))


data10, labels10 = pattern(2, 1), [6, 9]
label10, names10 = "training batch 1 of 5", ["leptodactylus_pentadactylus_s_000004.png", "camion_s_000148.png"]
dump("cifar10_batch.pkl", {"batch_label": label10, "labels": labels10, "data": data10, "filenames": names10})

data100, fine, coarse = pattern(3, 2), [19, 29, 0], [11, 15, 4]
label100, names100 = "testing batch 1 of 1", ["volcano_s_000012.png", "woods_s_000412.png", "apple_s_000028.png"]
dump("cifar100_batch.pkl", {"filenames": names100, "batch_label": label100, "fine_labels": fine,
                            "coarse_labels": coarse, "data": data100})

# Batch edges (2001 items: two full batches of 1000 and a lone last one), ints of every
# width, a one-key dict, an int64 array (byte order '<') and a repeated global.
edges = [i % 10 for i in range(2001)]
widths = [0, 255, 256, 65535, 65536, -1, 2 ** 31 - 1]
inner = {"x": np.arange(3, dtype=np.int64)}
dump("edges.pkl", {"edges": edges, "widths": widths, "inner": inner, "again": pattern(1, 3)[:, :4]})
