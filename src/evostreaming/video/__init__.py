"""Video in: files, image folders, cameras and network streams sampled at a frame rate; an mp4 writer."""

from evostreaming.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "open_source": "sources",
        "Frame": "sources",
        "FrameSource": "sources",
        "VideoFileSource": "sources",
        "LiveSource": "sources",
        "ImageFolderSource": "sources",
        "ArraySource": "sources",
        "VideoSourceError": "sources",
        "write_mp4": "writer",
    },
)
