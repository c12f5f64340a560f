"""The code of tools/dockerfile-check.py, which builds the Dockerfile without a Docker engine and
checks its final stage. The script keeps the argument parsing and main(); the work is here.

    common      errors, the default PATH and output, shared by the others
    rootfs      stage trees on the host: mounts and processes in them, copy and removal,
                paths and users as seen from inside
    bases       the debian:12 and debian:12-slim base trees, made from one debootstrap tree
    dockerfile  the Dockerfile's syntax: instructions, flags, words and variables
    context     the build context (.dockerignore, COPY sources) and content digests
    build       stages and the builder, with the layer cache
    final       running the final stage as its container would, and the checks on it
"""
