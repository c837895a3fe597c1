"""The layer and output names the rest of the code reads, Keras-free (serving reads model outputs by them):
explanations from the logits and the last convolutional block, the unusual-image score from
the pooled features."""
LOGITS_LAYER = "logits"
POOLED_LAYER = "pool"  # the pooled features the head reads
MOBILENET_LAST_CONV = "out_relu"  # keras.applications.MobileNetV2's last activation
SEQUENTIAL_LAST_CONV = "last_conv"
LAST_CONV_LAYERS = (MOBILENET_LAST_CONV, SEQUENTIAL_LAST_CONV)
MEMBER_PREFIX = "member{}_"  # an average's member i: its layers' names start so
SEGMENTER_OUTPUT = "mask"  # the U-Net forward graph's output (skinlesion.graphs)
