# Cumulative prequential accuracy of the served model, one line per
# configuration. Written by //trainer:experiment; run it again with
#   gnuplot curves.gp
# in this folder.
$c0 << EOD
256 0.398438
504 0.593254
752 0.658245
1000 0.683000
1256 0.711783
1504 0.727394
1752 0.741438
2000 0.748500
EOD
$c1 << EOD
256 0.324219
504 0.539683
752 0.621011
1000 0.666000
1256 0.695860
1504 0.721410
1752 0.736301
2000 0.748000
EOD
$c2 << EOD
256 0.238281
512 0.228516
768 0.233073
1024 0.255859
1280 0.275781
1536 0.288411
1792 0.314174
2000 0.325500
EOD
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
  set terminal pngcairo size 1000,600 noenhanced
} else {
  set terminal png size 1000,600 noenhanced
}
set output "curves.png"
set title "Cumulative prequential accuracy of the served model"
set xlabel "streamed examples"
set ylabel "cumulative prequential accuracy"
set grid
set key outside right top
plot $c0 using 1:2 with linespoints linetype 1 dashtype 1 pointtype 7 pointsize 0.7 title "proactive t=8", \
     $c1 using 1:2 with linespoints linetype 2 dashtype 1 pointtype 5 pointsize 0.7 title "t=8 topk 0.1%", \
     $c2 using 1:2 with linespoints linetype 3 dashtype 1 pointtype 9 pointsize 0.7 title "online"
