include $(sort $(wildcard $(BR2_EXTERNAL_AETHER_PATH)/package/*/*.mk))
