enum KMSServerPlaceholder {}
