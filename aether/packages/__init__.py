"""Agent packages: pack on the host, deploy over the ABI, install, switch and roll back.

    format.py    the package directory and the .aether archive: pack, read, verify, unpack
    vendor.py    pure-Python dependencies (``requires``) resolved with pip at pack time (host only)
    install.py   <data>/agents/<name>/<version>/ and the ``current`` record of each agent
    staging.py   uploads in progress, bounded (size, one per caller, order, time, hang-up)
    deploy.py    aetherd's side: commit, switching versions, rollback, restore at start

Standard library only (deploy.py and install.py run in aetherd, in the image).
"""
