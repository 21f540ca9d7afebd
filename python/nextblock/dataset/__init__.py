"""Download, sort, verify and package training audio (``python -m nextblock.dataset``).

Modules, in the order the data flows:

* :mod:`~nextblock.dataset.cache`       – cache layout (``$NEXTBLOCK_CACHE``)
* :mod:`~nextblock.dataset.catalog`     – CSV/JSON catalog of multitrack archives
* :mod:`~nextblock.dataset.download`    – resumable, verified, parallel archive downloads
* :mod:`~nextblock.dataset.debian`      – the allowed Debian packages (``apt-get download`` + ``dpkg-deb -x``)
* :mod:`~nextblock.dataset.unpack`      – safe zip/tar extraction (traversal, links, bombs)
* :mod:`~nextblock.dataset.labels`      – instrument label table for stem names
* :mod:`~nextblock.dataset.sort_stems`  – archives/packages → stem manifest rows
* :mod:`~nextblock.dataset.manifest`    – the stem manifest CSV
* :mod:`~nextblock.dataset.verify`      – amplitude thresholding + mel-profile verification
* :mod:`~nextblock.dataset.report`      – kept/rejected summary and plot
* :mod:`~nextblock.dataset.package`     – 48 kHz examples, split by song, shards
* :mod:`~nextblock.dataset.shards`      – the ``nextblock-shards/1`` format and its readers
* :mod:`~nextblock.dataset.steps`       – the four steps (command line: :mod:`nextblock.commands.dataset`)

Readers for the trainer::

    from nextblock.dataset.shards import iter_examples, load_split
"""

from .shards import iter_examples, load_split

__all__ = ["iter_examples", "load_split"]
