################################################################################
#
# aether
#
################################################################################

# The version is aether/__init__.py's; the sources are this repository's
# init/ and aether/ (nothing else is copied into the build directory).
AETHER_VERSION = $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' \
	$(BR2_EXTERNAL_AETHER_PATH)/../aether/__init__.py)
AETHER_SITE = $(BR2_EXTERNAL_AETHER_PATH)/..
AETHER_SITE_METHOD = local
AETHER_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude __pycache__ \
	--include /aether/*** \
	--include /init/*** \
	--exclude /*
# host-python-jinja2: post-build.sh renders the rootfs/ overlay's templates.
AETHER_DEPENDENCIES = python3 host-python3 host-python-jinja2

AETHER_PYTHON_LIB = /usr/lib/python$(PYTHON3_VERSION_MAJOR)

# /init runs the target's interpreter (init/init names Debian's python3.11);
# the package goes beside the standard library: /init runs python with -I -S,
# which leaves site-packages off sys.path.
define AETHER_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/init/init $(TARGET_DIR)/init
	$(SED) '1s|^#!/usr/bin/python3[.0-9]*|#!/usr/bin/python$(PYTHON3_VERSION_MAJOR)|' \
		$(TARGET_DIR)/init
	mkdir -p $(TARGET_DIR)$(AETHER_PYTHON_LIB)
	rm -rf $(TARGET_DIR)$(AETHER_PYTHON_LIB)/aether
	cp -R $(@D)/aether $(TARGET_DIR)$(AETHER_PYTHON_LIB)/aether
endef

$(eval $(generic-package))
