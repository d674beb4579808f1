"""Topic names of the bags this package writes (mf sim, mf convert) and reads by default."""

IMAGE_TOPIC = "/camera/image_raw"
CAMERA_INFO_TOPIC = "/camera/camera_info"
POINTS_TOPIC = "/lidar/points"
GT_TOPIC = "/camera/depth/ground_truth"  # dense ground truth, 32FC1 metres (simulated or RGB-D)
TF_STATIC_TOPIC = "/tf_static"
TF_TOPIC = "/tf"
