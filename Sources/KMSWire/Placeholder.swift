enum KMSWirePlaceholder {}
