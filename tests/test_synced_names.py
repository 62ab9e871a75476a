"""Every public module-level name of ``synced_collections`` 1.0.1 exists under the same
module path in ``safe_data.synced``, and ``from <module> import *`` gives it as the
original's does: code (and test suites) written for the original port by changing the
import.

The original's names are written down here (read from its modules: every name not
starting with ``_`` that is not a module and is not an incidental import from the
standard library), not imported: the original need not be installed.  Its private
``_caching`` module is left out (docs/synced.md).
"""

import importlib

import pytest

ORIGINAL = {
    "": ["SyncedCollection", "SyncedDict", "SyncedList", "__version__"],
    "version": ["__version__"],
    "errors": ["BufferException", "BufferedError", "InvalidKeyError", "KeyTypeError", "MetadataError"],
    "numpy_utils": ["NUMPY", "NUMPY_CONVERSION_WARNING", "NumpyConversionWarning"],
    "utils": ["AbstractTypeResolver", "SyncedCollectionJSONEncoder", "default"],
    "validators": [
        "AbstractTypeResolver",
        "InvalidKeyError",
        "KeyTypeError",
        "json_format_validator",
        "no_dot_in_key",
        "require_string_key",
    ],
    "data_types": ["SyncedCollection", "SyncedDict", "SyncedList"],
    "data_types.attr_dict": ["AttrDict"],
    "data_types.synced_collection": ["AbstractTypeResolver", "SyncedCollection"],
    "data_types.synced_dict": ["AbstractTypeResolver", "SyncedCollection", "SyncedDict"],
    "data_types.synced_list": ["AbstractTypeResolver", "SyncedCollection", "SyncedList"],
    "buffers": [],
    "buffers.buffered_collection": ["BufferedCollection", "SyncedCollection", "logger"],
    "buffers.file_buffered_collection": [
        "BufferedCollection",
        "BufferedError",
        "FileBufferedCollection",
        "MetadataError",
    ],
    "buffers.memory_buffered_collection": [
        "FileBufferedCollection",
        "MetadataError",
        "SharedMemoryFileBufferedCollection",
    ],
    "buffers.serialized_file_buffered_collection": [
        "FileBufferedCollection",
        "MetadataError",
        "SerializedFileBufferedCollection",
        "SyncedCollectionJSONEncoder",
    ],
    "backends": [],
    "backends.collection_json": [
        "AbstractTypeResolver",
        "AttrDict",
        "BufferedJSONAttrDict",
        "BufferedJSONAttrList",
        "BufferedJSONCollection",
        "BufferedJSONDict",
        "BufferedJSONList",
        "InvalidKeyError",
        "JSONAttrDict",
        "JSONAttrList",
        "JSONCollection",
        "JSONDict",
        "JSONList",
        "KeyTypeError",
        "MemoryBufferedJSONAttrDict",
        "MemoryBufferedJSONAttrList",
        "MemoryBufferedJSONCollection",
        "MemoryBufferedJSONDict",
        "MemoryBufferedJSONList",
        "ON_WINDOWS",
        "SerializedFileBufferedCollection",
        "SharedMemoryFileBufferedCollection",
        "SyncedCollection",
        "SyncedCollectionJSONEncoder",
        "SyncedDict",
        "SyncedList",
        "json_attr_dict_validator",
        "json_format_validator",
        "no_dot_in_key",
        "require_string_key",
    ],
    "backends.collection_mongodb": [
        "MONGO",
        "MongoDBCollection",
        "MongoDBDict",
        "MongoDBList",
        "SyncedCollection",
        "SyncedDict",
        "SyncedList",
        "json_format_validator",
        "require_string_key",
    ],
    "backends.collection_redis": [
        "RedisCollection",
        "RedisDict",
        "RedisList",
        "SyncedCollection",
        "SyncedCollectionJSONEncoder",
        "SyncedDict",
        "SyncedList",
        "json_format_validator",
        "require_string_key",
    ],
    "backends.collection_zarr": [
        "SyncedCollection",
        "SyncedDict",
        "SyncedList",
        "ZARR",
        "ZarrCollection",
        "ZarrDict",
        "ZarrList",
        "require_string_key",
    ],
}


def ours(module: str) -> str:
    return "safe_data.synced" + (f".{module}" if module else "")


@pytest.mark.parametrize("module", sorted(ORIGINAL))
def test_every_public_name_of_the_original_module_is_here(module):
    names = ORIGINAL[module]
    mod = importlib.import_module(ours(module))
    assert [name for name in names if not hasattr(mod, name)] == []
    star = {}
    exec(f"from {ours(module)} import *", star)
    assert [name for name in names if name not in star] == [], "missing from __all__"


def test_a_name_in_several_modules_is_one_object():
    """A re-exported name is the object its first module defines, not a look-alike."""
    first = {}
    for module, names in ORIGINAL.items():
        mod = importlib.import_module(ours(module))
        for name in names:
            assert getattr(mod, name) is first.setdefault(name, getattr(mod, name)), (module, name)


def test_the_flags_say_what_is_installed():
    import importlib.util

    import safe_data
    from safe_data.synced import __version__, numpy_utils
    from safe_data.synced.backends import collection_json, collection_mongodb, collection_zarr

    assert __version__ == safe_data.__version__
    assert collection_json.ON_WINDOWS is False  # POSIX only
    assert numpy_utils.NUMPY is (importlib.util.find_spec("numpy") is not None)
    assert collection_mongodb.MONGO is (importlib.util.find_spec("bson") is not None)
    assert collection_zarr.ZARR is all(
        importlib.util.find_spec(name) is not None for name in ("zarr", "numcodecs")
    )
