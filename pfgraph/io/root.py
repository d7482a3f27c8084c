"""pfgraph's ROOT files: the one import path of both sides, :mod:`pfgraph.io.writing` (writers,
compression threads, the point cloud and branch layout) and :mod:`pfgraph.io.reading` (readers,
validation, schema migrations), which are kept apart as uproot keeps ``reading.py`` apart from
``writing/``. Code may import from here or from either module.
"""

from __future__ import annotations

from pfgraph.io.reading import (  # noqa: F401
    EventFiles,
    FileMigration,
    check_event_ids,
    check_finite,
    check_header,
    check_tree,
    corrupt,
    expand_paths,
    is_rntuple,
    migration_for,
    open_root,
    read_meta,
    reason,
    tree_names,
)
from pfgraph.io.writing import (  # noqa: F401
    COMPRESSIONS,
    DEFAULT_COMPRESSION,
    DEFAULT_FORMAT,
    FORMATS,
    ROOT_BLOCK,
    EventWriter,
    RootWriter,
    check_format,
    event_branch_types,
    jagged_record,
    make_meta,
    parse_compression,
    pixel_tables,
    point_cloud,
    sparse_truth,
)
