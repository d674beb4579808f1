"""mf_ros: ROS 2 nodes and sensor-message conversion around mf_core."""
